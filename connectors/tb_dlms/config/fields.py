"""Typed reads from a JSON object that record every problem instead of stopping at the first.

A ``Section`` reads one JSON object. Each getter returns the value (or the default) and, when the
value is wrong, records a ``ConfigError`` naming the field path; callers compare error counts to
decide whether what they built is usable. Values of secret fields never appear in messages.
"""
from __future__ import annotations

import difflib
import enum
import json
import math
import re
from typing import Any, Iterable, Literal, TypeVar, overload

from ..protocol.obis import ObisCode, ObisError
from ..protocol.readings import CLASS_NAMES
from ..protocol.settings import Secret
from . import env
from .errors import ConfigError

E = TypeVar("E", bound=enum.Enum)

#: Keys starting with these are comments (JSON has none) and are ignored everywhere.
COMMENT_PREFIXES = ("_", "//")


def show(value: Any) -> str:
    """A short rendering of a wrong value for an error message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_comment(key: str) -> bool:
    return key.startswith(COMMENT_PREFIXES)


class Section:
    """One JSON object being read, with its path and where its errors go."""

    def __init__(self, data: dict[str, Any], path: str, errors: list[ConfigError],
                 device_index: int | None = None, device_name: str | None = None) -> None:
        self.data = data
        self.path = path
        self.errors = errors
        self.device_index = device_index
        self.device_name = device_name

    # -- plumbing -----------------------------------------------------------------------------

    def at(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str | int | None, message: str) -> None:
        path = self.path if key is None else self.at(key)
        self.errors.append(ConfigError(path, message, self.device_index, self.device_name))

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def _raw(self, key: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None and required:
            self.error(key, "is required")
        return value

    def child(self, data: dict[str, Any], key: str | int) -> "Section":
        return Section(data, self.at(key), self.errors, self.device_index, self.device_name)

    def reject_unknown(self, known: Iterable[str]) -> None:
        known = list(known)
        for key in self.data:
            if key in known or is_comment(key):
                continue
            hint = difflib.get_close_matches(key, known, n=1)
            also = f" (did you mean {hint[0]!r}?)" if hint else f"; known keys: {', '.join(known)}"
            self.error(key, f"is not a known key{also}")

    # -- getters ------------------------------------------------------------------------------

    def section(self, key: str, required: bool = False) -> "Section | None":
        value = self._raw(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.error(key, f"must be an object, got {kind_of(value)}")
            return None
        return self.child(value, key)

    def sections(self, key: str, required: bool = False) -> "list[tuple[int, Any]] | None":
        """The items of a list; the caller checks each one's type so it can name it by index."""
        value = self._raw(key, required)
        if value is None:
            return None
        if not isinstance(value, list):
            self.error(key, f"must be a list, got {kind_of(value)}")
            return None
        return list(enumerate(value))

    # Each getter returns its default when the value is missing or wrong: given a default, the result
    # is never None (the overloads tell mypy so; a wrong value is then only in the error list).
    @overload
    def text(self, key: str, default: str, required: bool = False, max_chars: int | None = None) -> str: ...
    @overload
    def text(self, key: str, default: None = None, required: bool = False,
             max_chars: int | None = None) -> str | None: ...

    def text(self, key: str, default: str | None = None, required: bool = False,
             max_chars: int | None = None) -> str | None:
        value = self._raw(key, required)
        if value is None:
            return default
        if not isinstance(value, str) or not value.strip():
            self.error(key, f"must be a non-empty string, got {show(value)}")
            return default
        if max_chars is not None and len(value.strip()) > max_chars:
            self.error(key, f"must be at most {max_chars} characters (ThingsBoard's limit for names and keys), "
                            f"got {len(value.strip())}")
            return default
        return value.strip()

    @overload
    def integer(self, key: str, default: int, lo: int | None = None, hi: int | None = None,
                required: bool = False) -> int: ...
    @overload
    def integer(self, key: str, default: None = None, lo: int | None = None, hi: int | None = None,
                required: bool = False) -> int | None: ...

    def integer(self, key: str, default: int | None = None, lo: int | None = None, hi: int | None = None,
                required: bool = False) -> int | None:
        value = self._raw(key, required)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"must be an integer{_range(lo, hi)}, got {show(value)}")
            return default
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.error(key, f"must be an integer{_range(lo, hi)}, got {value}")
            return default
        return value

    @overload
    def number(self, key: str, default: float, lo: float | None = None, hi: float | None = None,
               positive: bool = False) -> float: ...
    @overload
    def number(self, key: str, default: None = None, lo: float | None = None, hi: float | None = None,
               positive: bool = False) -> float | None: ...

    def number(self, key: str, default: float | None = None, lo: float | None = None,
               hi: float | None = None, positive: bool = False) -> float | None:
        value = self._raw(key, False)
        if value is None:
            return default
        what = "a positive number" if positive else f"a number{_range(lo, hi)}"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.error(key, f"must be {what}, got {show(value)}")
            return default
        if (positive and value <= 0) or (lo is not None and value < lo) or (hi is not None and value > hi):
            self.error(key, f"must be {what}, got {value}")
            return default
        return value

    @overload
    def choice(self, key: str, enum_cls: type[E], default: E, required: bool = False) -> E: ...
    @overload
    def choice(self, key: str, enum_cls: type[E], default: None = None, required: bool = False) -> E | None: ...

    def choice(self, key: str, enum_cls: type[E], default: E | None = None, required: bool = False) -> E | None:
        value = self._raw(key, required)
        if value is None:
            return default
        names = [m.value for m in enum_cls]
        if isinstance(value, str):
            for member in enum_cls:
                if member.value == value.strip().lower():
                    return member
        self.error(key, f"must be one of {', '.join(map(repr, names))}, got {show(value)}")
        return default

    @overload
    def obis(self, key: str, default: ObisCode, required: bool = False) -> ObisCode: ...
    @overload
    def obis(self, key: str, default: None = None, required: bool = False) -> ObisCode | None: ...

    def obis(self, key: str, default: ObisCode | None = None, required: bool = False) -> ObisCode | None:
        value = self._raw(key, required)
        if value is None:
            return default
        try:
            return ObisCode.parse(value)
        except ObisError as exc:
            self.error(key, f"is not an OBIS code: {exc}")
            return default

    def class_id(self, default: int = 3) -> int:
        """``classId``: a COSEM class id or its name (``Register``, ``Clock`` ...)."""
        value = self.data.get("classId")
        if value is None:
            return default
        if isinstance(value, str):
            by_name = {n.lower(): cid for cid, n in CLASS_NAMES.items()}
            if value.strip().lower() in by_name:
                return by_name[value.strip().lower()]
            self.error("classId", f"must be a COSEM class id (1 Data, 3 Register, 8 Clock...) or one of "
                                  f"{', '.join(CLASS_NAMES.values())}, got {show(value)}")
            return default
        number = self.integer("classId", default, 1, 0xFFFF)
        return default if number is None else number

    def secret_text(self, key: str) -> Secret | None:
        """A password: literal, ``${ENV_VAR}`` or ``${ENV_VAR:-default}``; its value never reaches an error message."""
        value = self._secret_raw(key)
        if value is None:
            return None
        return Secret(value.encode("utf-8"))

    @overload
    def hex_bytes(self, key: str, length: int, secret: Literal[False] = False,
                  required: bool = False) -> bytes | None: ...
    @overload
    def hex_bytes(self, key: str, length: int, secret: Literal[True], required: bool = False) -> Secret | None: ...

    def hex_bytes(self, key: str, length: int, secret: bool = False, required: bool = False) -> bytes | None:
        value = self._secret_raw(key, required) if secret else self._raw(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(key, f"must be {length} bytes hex ({2 * length} hex digits), got {kind_of(value)}")
            return None
        digits = re.sub(r"[\s:\-]", "", value)
        if len(digits) % 2 or not re.fullmatch(r"[0-9A-Fa-f]*", digits):
            self.error(key, f"must be {length} bytes hex ({2 * length} hex digits), "
                            f"got {len(digits)} characters that are not an even number of hex digits")
            return None
        raw = bytes.fromhex(digits)
        if len(raw) != length:
            self.error(key, f"must be {length} bytes hex ({2 * length} hex digits), got {len(raw)} bytes")
            return None
        return Secret(raw) if secret else raw

    def _secret_raw(self, key: str, required: bool = False) -> str | None:
        value = self._raw(key, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.error(key, f"must be a non-empty string, got {kind_of(value)}")
            return None
        ref = env.reference(value)
        if ref is None:
            return value
        try:
            resolved = ref.resolve()
        except env.UnsetVariable:
            self.error(key, f"refers to environment variable {ref.name}, which is not set or empty")
            return None
        if not resolved:
            self.error(key, f"refers to environment variable {ref.name}, which is not set or empty, "
                            "and its default is empty")
            return None
        return resolved


def _range(lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f" {lo}..{hi}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""
