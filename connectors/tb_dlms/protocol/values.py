"""Turn DLMS data into what a user wants to see: scaled numbers, unit text, readable strings, ISO times.

gurux hands back its own types (GXStructure, GXArray, GXEnum, GXDateTime, bytearray ...). Nothing
of those leaves this module: every value comes out as plain JSON (numbers, strings, lists, dicts).
"""
from __future__ import annotations

import datetime as _dt
import string
from decimal import Decimal
from typing import Any

from gurux_dlms import GXBitString, GXDateTime

from . import cosem_datetime

#: IEC 62056-62 / Blue Book unit enumeration, as text.
UNITS: dict[int, str] = {
    1: "a", 2: "mo", 3: "wk", 4: "d", 5: "h", 6: "min", 7: "s", 8: "°", 9: "°C", 10: "currency",
    11: "m", 12: "m/s", 13: "m³", 14: "m³", 15: "m³/h", 16: "m³/h", 17: "m³/d", 18: "m³/d",
    19: "l", 20: "kg", 21: "N", 22: "Nm", 23: "Pa", 24: "bar", 25: "J", 26: "J/h", 27: "W",
    28: "VA", 29: "var", 30: "Wh", 31: "VAh", 32: "varh", 33: "A", 34: "C", 35: "V", 36: "V/m",
    37: "F", 38: "Ω", 39: "Ωm²/m", 40: "Wb", 41: "T", 42: "A/m", 43: "H", 44: "Hz", 45: "1/(Wh)",
    46: "1/(varh)", 47: "1/(VAh)", 48: "V²h", 49: "A²h", 50: "kg/s", 51: "S", 52: "K",
    53: "1/(V²h)", 54: "1/(A²h)", 55: "1/m³", 56: "%", 57: "Ah", 60: "Wh/m³", 61: "J/m³",
    62: "Mol %", 63: "g/m³", 64: "Pa s", 65: "J/kg", 66: "g/cm²", 67: "atm", 70: "dBm",
    71: "dBµV", 72: "dB", 253: "reserved", 254: "other",
}
#: 255 means "count", i.e. no unit.
NO_UNIT = 255

_PRINTABLE = set(string.printable) - set("\x0b\x0c")


def unit_text(code: int | None) -> str | None:
    if code is None or code == NO_UNIT or code == 0:
        return None
    return UNITS.get(code, f"unit({code})")


def apply_scaler(value: Any, scaler: int | None) -> Any:
    """value x 10^scaler, so that 23012 x 10^-2 reads 230.12, not 230.11999999999998.

    Dividing an integer by an exact power of ten rounds once, to the double nearest the decimal
    result, whose shortest repr is that decimal; multiplying by 0.01 would round twice.
    """
    if not scaler or type(value) is bool or not isinstance(value, (int, float)):
        return value
    if scaler > 0:
        return value * 10**scaler
    return value / _POWERS[-scaler] if -scaler < len(_POWERS) else value * 10.0**scaler


_POWERS = [10**n for n in range(20)]


def octets(raw: bytes | bytearray) -> str:
    """ASCII when every byte is printable (serial numbers, firmware), else hex."""
    data = bytes(raw)
    if data and all(chr(b) in _PRINTABLE for b in data):
        return data.decode("ascii").strip("\x00 ")
    return data.hex()


def decode_datetime(raw: bytes | bytearray, deviation_utc_minus_local: bool = True) -> dict[str, Any] | None:
    """Decode a 12-byte COSEM date-time octet string.

    Returns ISO time with the meter's deviation applied (so it is comparable across meters),
    the raw deviation and the clock status, or None when the meter left the date unspecified.
    Deployed meters and gurux count the deviation as UTC minus local time (CET = -60); meters
    following the newer Blue Book convention (local minus UTC) need ``deviation_utc_minus_local``
    set to False.
    """
    return _decode_datetime(bytes(raw), deviation_utc_minus_local)


def _decode_datetime(b: bytes, deviation_utc_minus_local: bool = True) -> dict[str, Any] | None:
    value = cosem_datetime.decode(b)
    if value is None:
        return None
    result: dict[str, Any] = {"status": cosem_datetime.status_names(value.status)}
    offset_min = value.utc_offset_min(deviation_utc_minus_local)
    if offset_min is None or value.status == cosem_datetime.STATUS_NOT_SPECIFIED:
        result["iso"] = value.local.isoformat()
        result["deviation"] = None
    else:
        aware = value.local.replace(tzinfo=_dt.timezone(_dt.timedelta(minutes=offset_min)))
        result["iso"] = aware.isoformat()
        result["epochMs"] = int(aware.timestamp() * 1000)
        result["deviation"] = value.deviation
    return result


def encode_datetime(when: _dt.datetime, deviation_utc_minus_local: bool = True) -> bytes:
    """COSEM date-time (12 bytes) for an aware datetime; deviation by default in gurux's UTC-minus-local."""
    return cosem_datetime.encode_aware(when, deviation_utc_minus_local)


def plain(value: Any) -> Any:
    """Any gurux value as plain JSON."""
    kind = type(value)
    if kind is int or kind is float or kind is str or value is None or kind is bool:
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):  # GXEnum and other int subclasses
        return int(value)
    if isinstance(value, (float, str)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return octets(value)
    if isinstance(value, GXBitString):
        return str(value)
    if isinstance(value, GXDateTime):
        dt = value.value
        return dt.isoformat() if dt is not None else None
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "value") and isinstance(value.value, (int, float)):
        return value.value  # GXInt8/GXUInt16 ... wrappers
    return str(value)


def decode_clock(value: Any, deviation_utc_minus_local: bool = True) -> dict[str, Any] | None:
    """The clock attribute as {iso, epochMs, deviation, status}, whether gurux decoded it or not."""
    if isinstance(value, (bytes, bytearray)):
        return decode_datetime(value, deviation_utc_minus_local)
    if isinstance(value, GXDateTime) and value.value is not None:
        return {"iso": value.value.isoformat(), "epochMs": int(value.value.timestamp() * 1000),
                "deviation": None, "status": []}
    return None
