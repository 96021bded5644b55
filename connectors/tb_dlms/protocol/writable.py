"""Which DLMS data types a value from JSON can be written as, and the check that the value fits.

gurux fails deep inside request building on a value of the wrong kind (a number for an octet
string, a list for a string, a word for a date-time): checked here, before anything goes to the
meter, that is a parameter error for the caller, not a protocol error that would cost the meter
its association.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
from typing import Any, Final

from .axdr import INTEGER_RANGES

#: Container types: a JSON list does not say the type of each element, so they are not written.
UNWRITABLE: Final = ("array", "structure", "compact_array", "none")
WRITABLE_TYPES: Final = tuple(INTEGER_RANGES) + ("boolean", "float32", "float64", "octet_string", "string",
                                                 "string_utf8", "bitstring", "datetime", "date", "time")
#: A method's parameter when the config names no type: the dummy integer most methods take (int8 0).
METHOD_PARAMETER_TYPE: Final = "int8"
_WHEN_EXAMPLES: Final = {"datetime": '"2024-03-31T02:00:00+01:00" (with its UTC offset)', "date": '"2024-03-31"',
                         "time": '"02:00:00"'}


def _bad_value(value: Any, type_name: str, wanted: str) -> ValueError:
    return ValueError(f"must be {wanted} for {type_name}, got {json.dumps(value, default=str)}")


def typed_value(value: Any, type_name: str) -> Any:
    """``value`` (from JSON) as what gurux encodes for the canonical ``type_name``.

    Raises ValueError saying what the value must be ("must be an integer 0..255 for uint8, got -1").
    """
    if value is None:
        raise ValueError("is required")
    if type_name in INTEGER_RANGES:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        lo, hi = INTEGER_RANGES[type_name]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"must be an integer {lo}..{hi} for {type_name}, got {json.dumps(value)}")
    elif type_name == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise _bad_value(value, type_name, "true or false")
    elif type_name in ("float32", "float64"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _bad_value(value, type_name, "a finite number")
        value = float(value)
    elif type_name in ("octet_string", "string", "string_utf8"):
        if not isinstance(value, str):
            raise _bad_value(value, type_name, "a string")
        if type_name == "string" and not value.isascii():
            raise _bad_value(value, type_name, "an ASCII string (string_utf8 takes any text)")
    elif type_name == "bitstring":
        if not isinstance(value, str) or set(value) - {"0", "1"}:
            raise _bad_value(value, type_name, 'a string of 0 and 1, e.g. "0101"')
    elif type_name in ("datetime", "date", "time"):
        value = _when_value(value, type_name)
    return value


def _when_value(value: Any, type_name: str) -> _dt.datetime:
    """ISO 8601 text to the datetime gurux encodes (date and time use only their part of it)."""
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            if type_name == "date":
                return _dt.datetime.combine(_dt.date.fromisoformat(text), _dt.time())
            if type_name == "time":
                return _dt.datetime.combine(_dt.date(2000, 1, 1), _dt.time.fromisoformat(text))
            when = _dt.datetime.fromisoformat(text)
            if when.tzinfo is not None:
                return when
        except ValueError:
            pass
    raise _bad_value(value, type_name, f"ISO 8601 text such as {_WHEN_EXAMPLES[type_name]}")
