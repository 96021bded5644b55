"""COSEM date-time (Blue Book 4.1.6.1): the 12-byte octet string of clocks, profile rows and selectors.

Layout: year (2 bytes), month, day of month, day of week (1 = Monday), hour, minute, second,
hundredths, deviation (signed 16-bit minutes between local time and UTC), clock status (bits).
"Not specified" is 0xFFFF for the year, 0xFF for the other one-byte fields and the status, and
0x8000 for the deviation. Month and day 0xFD/0xFE (daylight saving end/begin, last/second last
day of the month) repeat every year: they name no instant, so ``decode`` gives None for them.

The deviation's sign is found both ways in the field: gurux and most deployed meters write UTC
minus local time (CET = -60), meters following the newer Blue Book wording local minus UTC
(CET = +60). Every function here takes the convention as ``utc_minus_local``; read the wrong
way, a meter's timestamps are off by twice its offset.

The one codec of the format: the session (clock and profile rows), the profile range selector,
the simulator and the gateway's clock setting all go through it.
"""
from __future__ import annotations

import datetime as _dt
import enum
import struct
from typing import Final, NamedTuple

LENGTH: Final = 12
YEAR_NOT_SPECIFIED: Final = 0xFFFF
#: Month, day, weekday, hour, minute, second, hundredths not specified.
FIELD_NOT_SPECIFIED: Final = 0xFF
#: The deviation field's "not specified" (0x8000 on the wire), as the signed value it decodes to.
DEVIATION_NOT_SPECIFIED: Final = -0x8000
STATUS_NOT_SPECIFIED: Final = 0xFF

_LAYOUT: Final = struct.Struct(">HBBBBBBBhB")
_WILDCARD_MONTH_OR_DAY: Final = frozenset((0xFD, 0xFE, 0xFF))
_UTC: Final = _dt.timezone.utc
_EPOCH: Final = _dt.datetime(1970, 1, 1)


class ClockStatus(enum.IntFlag):
    """Bits of the clock status byte (Blue Book 4.1.6.1)."""

    INVALID = 0x01
    DOUBTFUL = 0x02
    DIFFERENT_CLOCK_BASE = 0x04
    INVALID_CLOCK_STATUS = 0x08
    DAYLIGHT_SAVING_ACTIVE = 0x80


#: Status bit -> the name readings report it under. Plain int keys: ``status & flag`` would build
#: an IntFlag per bit and row.
STATUS_NAMES: Final[dict[int, str]] = {
    int(ClockStatus.INVALID): "invalid",
    int(ClockStatus.DOUBTFUL): "doubtful",
    int(ClockStatus.DIFFERENT_CLOCK_BASE): "differentClockBase",
    int(ClockStatus.INVALID_CLOCK_STATUS): "invalidClockStatus",
    int(ClockStatus.DAYLIGHT_SAVING_ACTIVE): "daylightSavingActive",
}

#: Every field not specified: the value of a clock's DST begin/end when it has none.
NOT_SPECIFIED: Final = _LAYOUT.pack(YEAR_NOT_SPECIFIED, *(FIELD_NOT_SPECIFIED,) * 7,
                                    DEVIATION_NOT_SPECIFIED, STATUS_NOT_SPECIFIED)


class DateTime(NamedTuple):
    """A decoded date-time: the wall-clock time as the meter wrote it, and how to place it.

    A named tuple: the cheapest record to build, and profile buffers decode one per row.
    """

    #: Naive local time; hour, minute, second or hundredths left unspecified count as 0.
    local: _dt.datetime
    #: Deviation in minutes as on the wire (its sign is the meter's convention); None: not specified.
    deviation: int | None
    #: The clock status byte as sent (STATUS_NOT_SPECIFIED included).
    status: int

    def utc_offset_min(self, utc_minus_local: bool = True) -> int | None:
        """Minutes east of UTC, or None when the meter gave no deviation."""
        if self.deviation is None:
            return None
        return utc_offset_min(self.deviation, utc_minus_local)


def status_names(status: int) -> list[str]:
    """Names of the bits set in a clock status byte, lowest bit first."""
    return [name for bit, name in STATUS_NAMES.items() if status & bit]


def wire_deviation(utc_offset: int, utc_minus_local: bool = True) -> int:
    """The deviation field for a local offset (minutes east of UTC), in either sign convention."""
    return -utc_offset if utc_minus_local else utc_offset


def utc_offset_min(deviation: int, utc_minus_local: bool = True) -> int:
    """Minutes east of UTC for a deviation read off the wire in the given convention."""
    return -deviation if utc_minus_local else deviation


def decode(raw: bytes) -> DateTime | None:
    """The fields of a 12-byte date-time; None unless it is one specific, possible instant.

    Wildcard dates (year, month or day not specified, 0xFD/0xFE days) and impossible ones
    (month 13, 30 February, hour 24, hundredths past 99) give None: meter data must never
    raise, and a selector bound or clock write the meter cannot place is refused either way.
    """
    if len(raw) != LENGTH:
        return None
    year, month, day, _weekday, hour, minute, second, hundredths, deviation, status = _LAYOUT.unpack(raw)
    if year == YEAR_NOT_SPECIFIED or month in _WILDCARD_MONTH_OR_DAY or day in _WILDCARD_MONTH_OR_DAY:
        return None
    try:
        local = _dt.datetime(year, month, day,
                             0 if hour == FIELD_NOT_SPECIFIED else hour,
                             0 if minute == FIELD_NOT_SPECIFIED else minute,
                             0 if second == FIELD_NOT_SPECIFIED else second,
                             0 if hundredths == FIELD_NOT_SPECIFIED else hundredths * 10_000)
    except ValueError:
        return None
    return DateTime(local, None if deviation == DEVIATION_NOT_SPECIFIED else deviation, status)


def encode(local: _dt.datetime, deviation: int | None = None, status: int = 0, *,
           hundredths: bool = True) -> bytes:
    """12 bytes for a wall-clock time (its tzinfo, if any, is not looked at) and a wire deviation.

    ``deviation`` None writes "not specified"; ``hundredths`` False leaves them unspecified
    (what the profile selector sends: some meters compare hundredths they never store).
    """
    return _LAYOUT.pack(local.year, local.month, local.day, local.isoweekday(), local.hour, local.minute,
                        local.second, local.microsecond // 10_000 if hundredths else FIELD_NOT_SPECIFIED,
                        DEVIATION_NOT_SPECIFIED if deviation is None else deviation, status)


def encode_aware(when: _dt.datetime, utc_minus_local: bool = True, status: int = 0) -> bytes:
    """An aware datetime at its own offset, the deviation signed the meter's way."""
    offset = when.utcoffset()
    if offset is None:
        raise ValueError("clock value needs a time zone")
    return encode(when, wire_deviation(int(offset.total_seconds() // 60), utc_minus_local), status)


def from_timestamp(ts: float, utc_offset: int = 0, utc_minus_local: bool = True, status: int = 0) -> bytes:
    """Unix seconds (whole seconds kept) as local time at ``utc_offset`` minutes east of UTC."""
    local = _EPOCH + _dt.timedelta(seconds=int(ts), minutes=utc_offset)
    return encode(local, wire_deviation(utc_offset, utc_minus_local), status)


def to_timestamp(raw: bytes, default_offset: int = 0, utc_minus_local: bool = True) -> float | None:
    """Unix seconds (hundredths dropped), or None when the date names no instant.

    A date-time without a deviation is taken as local time at ``default_offset`` minutes east of UTC.
    """
    value = decode(raw)
    if value is None:
        return None
    offset = value.utc_offset_min(utc_minus_local)
    local = value.local.replace(microsecond=0, tzinfo=_UTC)
    return local.timestamp() - (default_offset if offset is None else offset) * 60


def clock_value(now: _dt.datetime, meter_zone: _dt.tzinfo | None, *, deviation_specified: bool,
                standard_offset: int | None, utc_minus_local: bool = True) -> bytes:
    """The clock time to write: ``now`` at the offset the meter reported, in its own convention.

    A meter that never sends a deviation gets none back (it keeps local time); one ahead of its
    standard offset (``standard_offset`` minutes east of UTC, when known) is on summer time, and
    the status says so.
    """
    local = now.astimezone(meter_zone)
    if not deviation_specified:
        return encode(local, None)
    summer = standard_offset is not None and local.utcoffset() != _dt.timedelta(minutes=standard_offset)
    return encode_aware(local, utc_minus_local, ClockStatus.DAYLIGHT_SAVING_ACTIVE if summer else 0)
