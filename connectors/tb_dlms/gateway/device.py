"""One meter as the gateway sees it: its coordinator and listeners, assembled in one place, and its RPCs.

The coordinator (gateway/coordinator.py) owns the schedule, the failure policy and the session; the
listeners registered with it consume each poll: telemetry and units, attributes, health and presence
(gateway/health.py), profiles, event logs and the clock (gateway/collector.py, given at construction).
All of them publish through the one ``publish`` they are given: the connector's, which checks the
payload limit and what the gateway's storage answered. This facade is what RPCs, commands and the
connector hold: every meter polls in its own asyncio task, so a slow or dead meter delays only itself.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from thingsboard_gateway.gateway.entities.converted_data import ConvertedData

from ..config.schema import DeviceConfig
from ..protocol.readings import AttributeRef
from ..protocol.stats import SessionStats
from ..resilience.breaker import CircuitBreaker
from ..resilience.stale import StaleTimer
from .collector import MeterDataCollector
from .convert import json_value
from .coordinator import CLOSE_BOUND_S, MeterCoordinator
from .health import HEALTH_BREAKER, HEALTH_CONNECTED, HEALTH_LAST_ERROR, MODE_E_IDENTIFICATION, MeterHealth
from .sessions import SessionFactory, SessionLike
from .telemetry import UNITS_ATTRIBUTE, Attributes, FailureLog, Telemetry

if TYPE_CHECKING:
    from ..protocol.listener import PushTarget

#: The attribute names a dashboard shows, importable from here as before the split.
__all__ = ["DLMSDevice", "HEALTH_BREAKER", "HEALTH_CONNECTED", "HEALTH_LAST_ERROR", "MODE_E_IDENTIFICATION",
           "UNITS_ATTRIBUTE"]

Publish = Callable[[ConvertedData], None]
#: Told when the meter should leave ThingsBoard's list of connected devices (False) or is back (True).
Presence = Callable[["DLMSDevice", bool], None]


class DLMSDevice:
    def __init__(self, config: DeviceConfig, session_factory: SessionFactory, publish: Publish,
                 log: logging.Logger, close_bound_s: float = CLOSE_BOUND_S,
                 presence: Presence | None = None, collector: MeterDataCollector | None = None) -> None:
        self.name = config.name
        self.coordinator = MeterCoordinator(config, session_factory, log, close_bound_s)
        self._publish = publish
        self._failures = FailureLog(config.name, log)
        self._telemetry = Telemetry(config, publish, self._failures, self.coordinator.stale, log)
        self._attributes = Attributes(self.coordinator, publish, self._failures, log)
        self.health = MeterHealth(self.coordinator, config.type, publish, log,
                                  (lambda up: presence(self, up)) if presence is not None else None)
        #: Profiles, event logs and clock; None for a meter that keeps none configured.
        self.collector = collector
        # Registration order is publication order: telemetry, health, attributes, then collections.
        for listener in (self._telemetry, self.health, self._attributes, collector):
            if listener is not None:
                self.coordinator.add_listener(listener)
        #: Pushed notifications published, and the push target (its failure counts) when it pushes.
        self.pushes = 0
        self.last_push_ts: int | None = None
        self.push_target: PushTarget | None = None

    # -- state, as the connector, RPCs and tests read it --------------------------------------------

    @property
    def config(self) -> DeviceConfig:
        return self.coordinator.config

    @config.setter
    def config(self, config: DeviceConfig) -> None:
        self.coordinator.config = config  # a key change: later sessions associate with the new keys

    @property
    def stats(self) -> SessionStats:
        return self.coordinator.stats

    @property
    def session(self) -> SessionLike | None:
        return self.coordinator.session

    @session.setter
    def session(self, session: SessionLike | None) -> None:
        self.coordinator.session = session

    @property
    def connected(self) -> bool:
        return self.coordinator.connected

    @property
    def absent(self) -> bool:
        return self.coordinator.absent

    @property
    def breaker(self) -> CircuitBreaker:
        return self.coordinator.breaker

    @property
    def stale(self) -> StaleTimer:
        return self.coordinator.stale

    @property
    def stuck_polls(self) -> int:
        return self.coordinator.stuck_polls

    @property
    def missed_slots(self) -> int:
        return self.coordinator.missed_slots

    @property
    def poll_timeouts(self) -> int:
        return self.coordinator.poll_timeouts

    @property
    def skipped_readings(self) -> int:
        return self._failures.count

    @property
    def last_poll_ts(self) -> int | None:
        return self._telemetry.last_poll_ts

    @property
    def last_error(self) -> str | None:
        return self.health.last_error

    @property
    def on_platform(self) -> bool:
        return self.health.on_platform

    @property
    def platform_disconnects(self) -> int:
        return self.health.platform_disconnects

    @property
    def storage_refusals(self) -> int:
        return self.health.storage_refusals

    @property
    def storage_error(self) -> str | None:
        return self.health.storage_error

    @property
    def oversized_values(self) -> int:
        return self.health.oversized_values

    # -- schedule and session (the coordinator's) ------------------------------------------------

    async def run(self) -> None:
        """Poll forever on this meter's grid; ends only by cancellation."""
        await self.coordinator.run()

    async def poll(self) -> bool:
        """Read the timeseries once (and the attributes after an association); never raises."""
        return await self.coordinator.poll()

    def shared_session(self) -> SessionLike:
        """The meter's one session, shared with the polls, for RPCs and collections."""
        return self.coordinator.shared_session()

    async def reset_session(self) -> None:
        await self.coordinator.reset_session()

    async def abort_session(self) -> None:
        await self.coordinator.abort_session()

    async def reconnect(self) -> dict:
        """Abandon any poll in flight and close the session: the next poll associates again."""
        await self.coordinator.reconnect()
        return {"success": True, "device": self.name}

    async def close(self) -> None:
        await self.coordinator.stop_polling()
        if self.collector is not None:
            await self.collector.stop()
        await self.coordinator.reset_session()

    # -- what the connector and the inbound side tell -------------------------------------------

    def call_in(self, present: bool, reason: str | None = None) -> None:
        """The meter opened a connection to us (True) or its connection is gone (False)."""
        self.coordinator.call_in(present)
        if not present:
            # Health says it (dlmsConnected false, lastError); the device stays connected at the gateway,
            # whose RPC routing (3.8.5) drops requests for a deleted device with a bare 408 "Request timeout":
            # kept, an RPC gets the clear "meter not connected" (or waits callInWaitS for it to call in).
            self.health.set_health(f"{self.name}: {reason or 'meter not connected'}")

    def publish_push(self, data: ConvertedData) -> None:
        """A push is data from the meter: it reconnects the device at ThingsBoard if it was away."""
        self.coordinator.stale.good()
        self.health.data_arrived()
        self._publish(data)

    def note_oversized(self, oversized: Any) -> None:
        self.health.note_oversized(oversized)

    def note_storage(self, problem: str | None) -> None:
        self.health.note_storage(problem)

    # -- RPCs -----------------------------------------------------------------------------------

    async def read_attributes(self) -> dict:
        """Read the mapped attributes and publish them; the reply of the ``readAttributes`` RPC."""
        return await self._attributes.read()

    async def get(self, ref: AttributeRef) -> dict:
        """One attribute on demand (RPC ``get``)."""
        reading = await self.shared_session().get(ref)
        if reading.error is not None:
            return {"error": f"{self.name}: {ref} not read: {reading.error}"}
        out = {"obis": str(ref.obis), "classId": ref.class_id, "attribute": ref.attribute,
               "value": json_value(reading.value)}
        if reading.unit is not None:
            out["unit"] = reading.unit
        return out

    def report(self) -> dict:
        """The ``getStats`` reply: counters and health, never connection secrets."""
        out = self.stats.as_dict()
        c = self.config.connection
        out.update({
            "device": self.name,
            "connected": self.connected,
            "lastError": self.last_error,
            "lastPollTs": self.last_poll_ts,
            "skippedReadings": self.skipped_readings,
            "missedSlots": self.missed_slots,
            "pollTimeouts": self.poll_timeouts,
            "pollPeriodS": self.config.poll_period_s,
            "endpoint": f"{c.host}:{c.port}",
            "interface": c.interface.value,
            "breaker": self.breaker.as_dict(),
            "stuckPolls": self.stuck_polls,
            "oversizedValues": self.oversized_values,
            "onPlatform": self.on_platform,
            "platformDisconnects": self.platform_disconnects,
            "staleReconnects": self.stale.reconnects,
            "storageRefusals": self.storage_refusals,
            "storageError": self.storage_error,
        })
        if c.inbound:
            out.update(endpoint=f"listener {c.listener}, identity {c.identity}", callingIn=not self.absent)
        if self.config.push is not None:
            out.update(pushes=self.pushes, lastPushTs=self.last_push_ts,
                       pushFailures=self.push_target.failures if self.push_target is not None else 0)
        if self.collector is not None:
            out.update(self.collector.report())
        return out
