"""COSEM date-time (12-byte octet string) to and from Unix seconds.

Profile buffers are encoded by hand (see profiles.py) because building a GXDateTime per row is
slow and gurux's own range filter is broken; this keeps the wire format identical to what the
gurux client writes and parses. Deviation follows gurux's sign convention (wire value is minus
the UTC offset in minutes), so a gurux client sees the meter's local time with the right offset;
``local_minus_utc`` gives the other convention found in the field (wire value is the offset).
"""
from __future__ import annotations

import datetime as _dt
import struct

UNSPECIFIED_DEVIATION = 0x8000
_UTC = _dt.timezone.utc


def wire_deviation(utc_offset_min: int, local_minus_utc: bool = False) -> int:
    """The deviation field for a local offset (minutes east of UTC), in either sign convention."""
    return utc_offset_min if local_minus_utc else -utc_offset_min


def encode(ts: float, utc_offset_min: int = 0, status: int = 0, local_minus_utc: bool = False) -> bytes:
    local = _dt.datetime.fromtimestamp(int(ts), _UTC) + _dt.timedelta(minutes=utc_offset_min)
    return struct.pack(
        ">HBBBBBBBhB",
        local.year, local.month, local.day, local.isoweekday(),
        local.hour, local.minute, local.second, 0,
        wire_deviation(utc_offset_min, local_minus_utc), status,
    )


def decode(raw: bytes, default_offset_min: int = 0, local_minus_utc: bool = False) -> float | None:
    """Unix seconds, or None when the date part is not specified (wildcards)."""
    if len(raw) != 12:
        return None
    year, month, day, _dow, hour, minute, second, _hs, dev, _st = struct.unpack(">HBBBBBBBhB", raw)
    if year == 0xFFFF or month > 12 or day > 31 or month == 0 or day == 0:
        return None
    hour = 0 if hour == 0xFF else hour
    minute = 0 if minute == 0xFF else minute
    second = 0 if second == 0xFF else second
    if (dev & 0xFFFF) == UNSPECIFIED_DEVIATION:
        offset = default_offset_min
    else:
        offset = dev if local_minus_utc else -dev
    local = _dt.datetime(year, month, day, hour, minute, second, tzinfo=_UTC)
    return local.timestamp() - offset * 60
