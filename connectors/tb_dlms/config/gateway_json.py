"""Read a config file exactly as the gateway 3.8.5 reads it, so a check and the service reach one verdict.

``TBGatewayService._load_connectors`` opens a connector file with ``encoding="UTF-8"`` and parses it
with ``simplejson.loads`` at its defaults (``__load_general_config`` does the same for
``tb_gateway.json``). With the pinned simplejson 4.3.0 that differs from the stdlib ``json`` in ways an
operator meets: a UTF-8 BOM is skipped (the file runs), ``NaN``/``Infinity`` are refused (the stdlib
accepts them), and so are trailing commas. So we call the same parser, not a look-alike.

What the gateway does with a connector file it cannot parse: it logs only "Cannot parse connector
configuration as a JSON, it will be passed as a string" and hands the raw text, prefixed with an id
marker, to the connector as its configuration; the load then fails on ``'str' object has no
attribute ...`` and no meter of that file runs. Bytes that are not UTF-8 fail the read itself. Every
such file is one error here, naming the file and the place, with that consequence spelled out.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError

try:  # the gateway's own parser (a dependency of thingsboard-gateway)
    from simplejson import JSONDecodeError, loads as _gateway_loads
except ImportError:  # pragma: no cover - the tools without the gateway installed: same rules by hand
    from json import JSONDecodeError  # type: ignore[assignment]  # same .msg/.pos as simplejson's

    def _reject_constant(name: str) -> Any:
        raise ValueError(name)

    def _gateway_loads(text: str) -> Any:  # type: ignore[no-redef]  # the fallback of the import above
        return json.loads(text.removeprefix("\ufeff"), parse_constant=_reject_constant)

#: The gateway prefixes an unparsable connector file with ``{id_var_start}<uuid>{id_var_end}``.
_ID_MARKER = re.compile(r"^\{id_var_start\}.*?\{id_var_end\}", re.DOTALL)
_NOT_JSON_NUMBERS = ("NaN", "Infinity", "-Infinity")
#: What an unparsable connector file costs, said with every parse error.
CONSEQUENCE = "the gateway cannot parse this file and starts none of its meters"
#: ... and an unparsable tb_gateway.json (``__load_general_config`` logs it and gets no config).
GATEWAY_FILE_CONSEQUENCE = "the gateway cannot parse this file and does not start"


def parse_gateway_json(text: str, source: str, consequence: str = CONSEQUENCE) -> tuple[Any, ConfigError | None]:
    """``text`` parsed as the gateway parses it, or one error naming ``source`` and the place."""
    if not text.strip("\ufeff \t\r\n"):
        return None, ConfigError("", f"{source} is empty: {consequence}")
    try:
        return _gateway_loads(text), None
    except JSONDecodeError as exc:
        return None, ConfigError("", f"{source}: not valid JSON at line {exc.lineno} column {exc.colno}: "
                                     f"{_explain(text, exc)}; {consequence}")
    except ValueError as exc:  # the fallback's NaN refusal
        return None, ConfigError("", f"{source}: {exc} is not a JSON number (write a number or null); "
                                     f"{consequence}")


def read_gateway_json(path: str | Path, consequence: str = CONSEQUENCE) -> tuple[Any, ConfigError | None]:
    """Read ``path`` as UTF-8 (as the gateway does: no BOM-aware codec, simplejson skips the BOM)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, ConfigError("", f"{path.name} is not UTF-8 text (byte {exc.start}: "
                                     f"{exc.object[exc.start:exc.start + 1]!r}): save it as UTF-8; {consequence}")
    except OSError as exc:
        return None, ConfigError("", f"cannot read {path}: {exc.strerror or exc}")
    return parse_gateway_json(text, path.name, consequence)


def unparsed_text(config: str) -> str:
    """The file's text from what the gateway hands over when it could not parse the file."""
    return _ID_MARKER.sub("", config, count=1)


def _explain(text: str, exc: JSONDecodeError) -> str:
    pos = exc.pos if isinstance(exc.pos, int) else 0
    for word in _NOT_JSON_NUMBERS:
        if text.startswith(word, pos):
            where = _non_numbers(text)
            at = f" (at {', '.join(where[:3])})" if where else ""
            return f"{word} is not a JSON number{at}: write a number, or null to leave the setting out"
    return exc.msg


class _NonNumber(str):
    pass


def _non_numbers(text: str) -> list[str]:
    """Where the NaN/Infinity literals are, as ``devices[1] "Meter 2": pollPeriod`` (stdlib json takes them)."""
    try:
        raw = json.loads(text.removeprefix("\ufeff"), parse_constant=_NonNumber)
    except ValueError:
        return []
    found: list[str] = []

    def walk(value: Any, path: str, device: str) -> None:
        if isinstance(value, _NonNumber):
            found.append(f"{device}: {path}" if device else path)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key), device)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]", device)

    if not isinstance(raw, dict):
        walk(raw, "", "")
        return found
    for key, value in raw.items():  # in file order; inside devices[] named as the schema names them
        if key != "devices" or not isinstance(value, list):
            walk(value, key, "")
            continue
        for i, item in enumerate(value):
            name = item.get("deviceName") if isinstance(item, dict) else None
            walk(item, "", f'devices[{i}] "{name}"' if isinstance(name, str) else f"devices[{i}]")
    return found
