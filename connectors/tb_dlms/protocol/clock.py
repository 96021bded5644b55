"""The Clock object (class 8): where its time is, how a reading of it reads, and how it is set.

A session hands the clock's ``time`` attribute (2) over as ISO 8601 text, with the offset when
the meter sends a deviation and without one when it leaves it unspecified; setting it writes a
12-byte date-time as an octet string, in the meter's own convention (see ``cosem_datetime.clock_value``).
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Final, Protocol

from .cosem_datetime import clock_value
from .obis import ObisCode
from .readings import AttributeRef

CLOCK_CLASS: Final = 8
TIME: Final = 2


class ClockSession(Protocol):
    async def set(self, ref: AttributeRef, value: Any, data_type_name: str | None = None) -> None: ...


def time_ref(obis: ObisCode) -> AttributeRef:
    return AttributeRef(obis, CLOCK_CLASS, TIME)


def meter_time(value: Any) -> _dt.datetime:
    """The time a reading of the clock gave (naive when the meter sent no deviation); ValueError if none."""
    return _dt.datetime.fromisoformat(str(value))


async def set_time(session: ClockSession, obis: ObisCode, now: _dt.datetime, meter_zone: _dt.tzinfo | None, *,
                   deviation_specified: bool, standard_offset: int | None, utc_minus_local: bool = True) -> None:
    """Write ``now`` at the offset the meter itself reported (``meter_zone``), signed its way."""
    octets = clock_value(now, meter_zone, deviation_specified=deviation_specified,
                         standard_offset=standard_offset, utc_minus_local=utc_minus_local)
    await session.set(time_ref(obis), octets, "octet_string")
