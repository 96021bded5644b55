"""Environment references, one syntax everywhere: ``${VAR}`` and ``${VAR:-default}``.

The gateway YAML (``tb_gateway.yaml``) substitutes them anywhere in its text; the connector JSON
takes them as the whole value of a secret field (``"password": "${METER1_PASSWORD}"``), so a
password or key lives on the gateway host and not in a file that is copied or sent to ThingsBoard.
A variable set to the empty string counts as unset (a service unit's ``Environment=PW=`` is almost
always a mistake); without a default that is an error naming the variable, never its value.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

#: An environment variable name as a shell accepts it.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: ``${VAR}`` or ``${VAR:-default}`` (the default ends at the first ``}``).
REFERENCE = re.compile(r"\$\{(" + NAME.pattern + r")(?::-([^}]*))?\}")


class UnsetVariable(LookupError):
    """A reference to a variable that is unset or empty, with no default."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True, slots=True)
class Reference:
    name: str
    #: The text after ``:-``; None when there is none (an unset variable is then an error).
    default: str | None = None

    def resolve(self, env: Mapping[str, str] | None = None) -> str:
        value = (os.environ if env is None else env).get(self.name)
        if value:
            return value
        if self.default is not None:
            return self.default
        raise UnsetVariable(self.name)


def reference(value: Any) -> Reference | None:
    """The reference when ``value`` is one and nothing else (``"${PW}"``), else None."""
    if not isinstance(value, str):
        return None
    match = REFERENCE.fullmatch(value)
    return Reference(match.group(1), match.group(2)) if match else None


def resolve(value: str, env: Mapping[str, str] | None = None) -> str:
    """A whole-value reference resolved; any other text unchanged. Raises :class:`UnsetVariable`."""
    ref = reference(value)
    return value if ref is None else ref.resolve(env)


def substitute(text: str, env: Mapping[str, str] | None = None) -> str:
    """Every reference in ``text`` replaced. Raises :class:`UnsetVariable` for the first unset one."""
    return REFERENCE.sub(lambda m: Reference(m.group(1), m.group(2)).resolve(env), text)
