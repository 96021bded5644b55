"""OBIS codes (IEC 62056-6-1) as a value type.

Users write OBIS codes in two notations: dotted (``1.0.32.7.0.255``) as in Gurux and COSEM object
lists, and the reduced ID notation printed on meters and in data sheets (``1-0:32.7.0*255``, the
``*255`` often left off). Both parse to the same six-byte code.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_DOTTED = re.compile(r"^\s*(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\s*$")
_REDUCED = re.compile(
    r"^\s*(\d{1,3})-(\d{1,3}):(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:[*&](\d{1,3}))?\s*$"
)


class ObisError(ValueError):
    """A string that is not an OBIS code."""


@dataclass(frozen=True, slots=True, order=True)
class ObisCode:
    a: int
    b: int
    c: int
    d: int
    e: int
    f: int = 255

    @classmethod
    def parse(cls, text: "str | ObisCode") -> "ObisCode":
        if isinstance(text, ObisCode):
            return text
        if not isinstance(text, str):
            raise ObisError(f"OBIS code must be a string, got {type(text).__name__}")
        m = _DOTTED.match(text) or _REDUCED.match(text)
        if not m:
            raise ObisError(
                f"invalid OBIS code {text!r}: expected A.B.C.D.E.F (1.0.32.7.0.255) "
                "or A-B:C.D.E*F (1-0:32.7.0*255)"
            )
        parts = [int(g) if g is not None else 255 for g in m.groups()]
        if any(p > 255 for p in parts):
            raise ObisError(f"invalid OBIS code {text!r}: each group must be 0..255")
        return cls(*parts)

    @classmethod
    def from_bytes(cls, raw: bytes) -> "ObisCode":
        if len(raw) != 6:
            raise ObisError(f"OBIS code needs 6 bytes, got {len(raw)}")
        return cls(*raw)

    def __bytes__(self) -> bytes:
        return bytes((self.a, self.b, self.c, self.d, self.e, self.f))

    def __str__(self) -> str:
        """Dotted form, which is what gurux expects as a logical name."""
        return f"{self.a}.{self.b}.{self.c}.{self.d}.{self.e}.{self.f}"

    @property
    def reduced(self) -> str:
        return f"{self.a}-{self.b}:{self.c}.{self.d}.{self.e}*{self.f}"
