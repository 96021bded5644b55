"""Probe meters the way the connector will: same settings, same session, same shared links.

One association per meter and one read of every mapped point, so a meter that passes here fails
in production only if something changes. Meters are probed concurrently (a fleet behind slow
links would otherwise take minutes); meters behind one serial server take turns on its link,
exactly as in the connector.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..config.schema import DeviceConfig, PointConfig
from ..gateway.convert import json_value
from ..gateway.sessions import SessionLike
from ..protocol.errors import DlmsError
from ..protocol.session import MeterSession
from ..protocol.pools import link_pool
from ..protocol.transport import LinkPool
from .diagnosis import Diagnosis, addresses, diagnose

#: Extra seconds over the device's own poll deadline before a probe is abandoned.
DEADLINE_MARGIN_S = 5.0


@dataclass
class PointResult:
    section: str
    point: PointConfig
    value: Any = None
    unit: str | None = None
    scaler: int | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        ref = self.point.ref
        return {"key": self.point.key, "section": self.section, "obis": str(ref.obis), "classId": ref.class_id,
                "attribute": ref.attribute, "value": json_value(self.value), "unit": self.unit,
                "scaler": self.scaler, "error": self.error}


@dataclass
class MeterResult:
    device: DeviceConfig
    connector: str = ""
    error: str | None = None
    diagnosis: Diagnosis | None = None
    points: list[PointResult] = field(default_factory=list)
    connect_ms: float | None = None
    read_ms: float | None = None
    #: Wall time of the whole probe (including a failed attempt): what a poll would cost.
    elapsed_ms: float | None = None
    stats: dict = field(default_factory=dict)
    #: IEC 62056-21 identification of a meter reached through an optical probe (mode E).
    identification: str | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        return "partial" if any(p.error for p in self.points) else "ok"

    @property
    def rtt_ms(self) -> float | None:
        trips = self.stats.get("roundTrips") or 0
        if not trips or self.error is not None or self.connect_ms is None or self.read_ms is None:
            return None
        return round((self.connect_ms + self.read_ms) / trips, 1)

    def as_dict(self) -> dict:
        d, c = self.device, self.device.connection
        return {
            "device": d.name, "connector": self.connector, "status": self.status, "ok": self.status == "ok",
            "endpoint": c.endpoint, "interface": c.interface.value, "identification": self.identification,
            "addresses": addresses(d.meter_settings()), "authentication": c.authentication.value,
            "error": self.error, "diagnosis": self.diagnosis.as_dict() if self.diagnosis else None,
            "connectMs": self.connect_ms, "readMs": self.read_ms, "elapsedMs": self.elapsed_ms, "rttMs": self.rtt_ms,
            "roundTrips": self.stats.get("roundTrips", 0), "resends": self.stats.get("resends", 0),
            "bytesSent": self.stats.get("bytesSent", 0), "bytesReceived": self.stats.get("bytesReceived", 0),
            "readings": [p.as_dict() for p in self.points],
        }


async def probe_device(device: DeviceConfig, links: LinkPool | None = None, connector: str = "") -> MeterResult:
    """A fresh session of the device's own settings: associate, read every mapped point, release."""
    return await probe_session(device, MeterSession(device.meter_settings(), links=links), connector)


#: Counters of one probe (a session shared with polling has counted before it).
_PROBE_COUNTERS = ("roundTrips", "resends", "bytesSent", "bytesReceived")


async def probe_session(device: DeviceConfig, session: SessionLike, connector: str = "", *, owned: bool = True,
                        deadline_s: float | None = None) -> MeterResult:
    """Probe over ``session``. ``owned=False``: the session belongs to a polled meter; it is used
    in turn with the polls (operations queue on it), never cancelled mid-exchange (that would tear
    its association down; the session's own timeouts bound each exchange) and left associated."""
    settings = device.meter_settings()
    result = MeterResult(device, connector)
    sections = [("timeseries", p) for p in device.timeseries] + [("attributes", p) for p in device.attributes]
    before = session.stats.as_dict()
    begun = time.perf_counter()
    try:
        limit = None if not owned else deadline_s if deadline_s is not None else \
            device.poll_timeout_s + DEADLINE_MARGIN_S
        async with asyncio.timeout(limit):
            started = time.perf_counter()
            await session.connect()
            result.connect_ms = _ms_since(started)
            result.identification = session.identification
            started = time.perf_counter()
            readings = await session.read([p.ref for _, p in sections])
            result.read_ms = _ms_since(started)
        for (section, point), reading in zip(sections, readings, strict=True):
            result.points.append(PointResult(section, point, reading.value, reading.unit, reading.scaler,
                                             reading.error))
    except (DlmsError, TimeoutError, OSError) as exc:
        result.error = str(exc) or type(exc).__name__
        result.diagnosis = diagnose(exc, settings)
    finally:
        if owned:
            await release_session(session)
    result.elapsed_ms = _ms_since(begun)
    after = session.stats.as_dict()
    result.stats = after if owned else {k: after.get(k, 0) - before.get(k, 0) for k in _PROBE_COUNTERS}
    return result


async def release_session(session: Any) -> None:
    """Release a probe's own session; one that will not release within 2 s is dropped."""
    try:
        await asyncio.wait_for(session.close(), 2.0)
    except Exception:  # noqa: BLE001 - a session that will not release is dropped
        await session.abort()


async def probe_all(devices: Sequence[tuple[str, DeviceConfig]], parallel: int = 8) -> list[MeterResult]:
    """Probe (connector name, device) pairs; results in the same order.

    One link pool per connector, as in the gateway (each connector instance has its own).
    """
    pools: dict[str, LinkPool] = {}
    gate = asyncio.Semaphore(max(1, parallel))

    async def one(connector: str, device: DeviceConfig) -> MeterResult:
        async with gate:
            return await probe_device(device, pools.setdefault(connector, link_pool()), connector)

    return list(await asyncio.gather(*(one(c, d) for c, d in devices)))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
