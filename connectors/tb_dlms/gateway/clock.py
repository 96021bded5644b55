"""The meter's clock against the gateway's: interval timestamps are only as good as the meter clock.

Drift is measured against the midpoint of the request (the meter answers somewhere in between)
and reported in seconds, positive when the meter is ahead. Setting the clock writes the
gateway's time in the meter's own convention: the deviation it reports (or "not specified" for
meters that never send one), so a meter on local standard time stays on it.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import time
from dataclasses import dataclass

from ..config.meter_data import ClockConfig
from ..protocol.cosem_datetime import clock_value
from .sessions import SessionLike


class ClockUnreadable(Exception):
    """The meter did not give a usable time (refused, not set, or flagged invalid)."""


@dataclass(frozen=True, slots=True)
class ClockReading:
    meter_time: _dt.datetime
    gateway_time: _dt.datetime
    #: The meter gave no deviation: its time was taken as local time at the configured offset.
    deviation_unspecified: bool = False

    @property
    def drift_s(self) -> float:
        return round((self.meter_time - self.gateway_time).total_seconds(), 2)

    def as_dict(self) -> dict:
        return {"meterTime": self.meter_time.isoformat(), "gatewayTime": self.gateway_time.isoformat(),
                "driftS": self.drift_s}


async def read_clock(session: SessionLike, config: ClockConfig, timeout_s: float) -> ClockReading:
    before = time.time()
    reading = await asyncio.wait_for(session.get(config.ref), timeout_s)
    after = time.time()
    if reading.error is not None:
        raise ClockUnreadable(f"clock {config.obis} not read: {reading.error}")
    try:
        meter_time = _dt.datetime.fromisoformat(str(reading.value))
    except ValueError:
        raise ClockUnreadable(f"clock {config.obis} gave {reading.value!r}, not a date-time") from None
    unspecified = meter_time.tzinfo is None
    if unspecified:
        offset = _dt.timedelta(minutes=config.utc_offset_min or 0)
        meter_time = meter_time.replace(tzinfo=_dt.timezone(offset))
    gateway_time = _dt.datetime.fromtimestamp((before + after) / 2, _dt.timezone.utc)
    return ClockReading(meter_time, gateway_time, unspecified)


def clock_octets(now: _dt.datetime, like: ClockReading, config: ClockConfig,
                 deviation_utc_minus_local: bool = True) -> bytes:
    """The 12-byte date-time to write: ``now`` at the offset the meter itself reported, signed its way."""
    return clock_value(now, like.meter_time.tzinfo, deviation_specified=not like.deviation_unspecified,
                       standard_offset=config.utc_offset_min, utc_minus_local=deviation_utc_minus_local)


async def sync_clock(session: SessionLike, config: ClockConfig, timeout_s: float) -> dict:
    """Set the meter clock to the gateway's time; the reply says how far off it was."""
    before = await read_clock(session, config, timeout_s)
    now = _dt.datetime.now(_dt.timezone.utc)
    octets = clock_octets(now, before, config, session.settings.deviation_utc_minus_local)
    await asyncio.wait_for(session.set(config.ref, octets, "octet_string"), timeout_s)
    after = await read_clock(session, config, timeout_s)
    return {"success": True, "obis": str(config.obis), "driftBeforeS": before.drift_s, "driftAfterS": after.drift_s,
            "meterTimeBefore": before.meter_time.isoformat(), "meterTimeAfter": after.meter_time.isoformat()}
