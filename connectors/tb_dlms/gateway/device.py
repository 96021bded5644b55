"""One meter as the gateway sees it: its session, its polling schedule, its health and counters.

Every meter polls in its own asyncio task with its own deadline, so a slow or dead meter only
ever delays itself. The device owns its ``SessionStats`` and hands it to each session it makes,
so counters survive a session that had to be dropped.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from thingsboard_gateway.gateway.entities.converted_data import ConvertedData
from thingsboard_gateway.gateway.entities.datapoint_key import DatapointKey
from thingsboard_gateway.gateway.entities.telemetry_entry import TelemetryEntry

from ..config.schema import DeviceConfig
from ..protocol.readings import AttributeRef
from ..protocol.stats import SessionStats
from ..resilience.breaker import BreakerState, CircuitBreaker, Transition
from ..resilience.stale import StaleTimer
from ..resilience.watchdog import guard_task
from .collector import MeterDataCollector
from .convert import Failure, PointMap, json_value
from .schedule import next_slot, slots_between, start_offset
from .sessions import SessionFactory, SessionLike

if TYPE_CHECKING:
    from ..protocol.listener import PushTarget

#: Seconds a session gets to release its association before it is dropped (stop, reconnect, timeout).
CLOSE_BOUND_S = 1.0
HEALTH_CONNECTED = "dlmsConnected"
HEALTH_LAST_ERROR = "lastError"
MODE_E_IDENTIFICATION = "modeEIdentification"
UNITS_ATTRIBUTE = "units"
HEALTH_BREAKER = "breakerState"

Publish = Callable[[ConvertedData], None]
#: Told when the meter should leave ThingsBoard's list of connected devices (False) or is back (True).
Presence = Callable[["DLMSDevice", bool], None]


def _dt_iso(ts: float | None) -> str:
    return _dt.datetime.fromtimestamp(ts or 0, _dt.timezone.utc).isoformat(timespec="seconds")


def describe_error(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class DLMSDevice:
    def __init__(self, config: DeviceConfig, session_factory: SessionFactory, publish: Publish,
                 log: logging.Logger, close_bound_s: float = CLOSE_BOUND_S,
                 presence: Presence | None = None) -> None:
        self.config = config
        self.name = config.name
        self.stats = SessionStats()
        self.session: SessionLike | None = None
        self.connected = False
        self.last_error: str | None = None
        self.last_poll_ts: int | None = None
        self.skipped_readings = 0
        self.missed_slots = 0
        self.poll_timeouts = 0
        self._factory = session_factory
        self._publish = publish
        self._log = log
        self._close_bound = close_bound_s
        self._timeseries = PointMap(config.timeseries, config.report_strategy, log)
        self._attributes = PointMap(config.attributes, config.report_strategy, log)
        #: Association count at which attributes were last read; None: read them on next poll.
        self._attributes_read_at: int | None = None
        #: Association count at which the units attribute was last published.
        self._units_sent_at: int | None = None
        self._poll_task: asyncio.Task | None = None
        self._health_sent: dict[str, Any] = {}
        self._failing_keys: dict[str, str] = {}
        self.breaker = CircuitBreaker(config.breaker)
        self.stale = StaleTimer(config.stale_after_s)
        #: Polls that outlived their deadline plus grace and were cancelled from outside.
        self.stuck_polls = 0
        #: Profiles, event logs and clock (gateway/collector.py); set by the connector, None for none.
        self.collector: MeterDataCollector | None = None
        #: Connected at ThingsBoard (the gateway connects a device with its first data). False once the
        #: breaker opened: the device is then disconnected, and nothing is published for it (every
        #: message is device activity to ThingsBoard) until it answers again; health held meanwhile.
        self.on_platform = True
        self.platform_disconnects = 0
        self._presence = presence
        self._held: dict[str, Any] = {}
        #: Hand-overs made while the gateway's storage refused data, and what it said (None: it takes data).
        self.storage_refusals = 0
        #: Values dropped because ThingsBoard would refuse them as too large, and the size seen per key.
        self.oversized_values = 0
        self._oversized_keys: dict[str, int] = {}
        self.storage_error: str | None = None
        self._storage_refusing_since: float | None = None
        #: A meter that calls in (connection.listener) and has no connection open: nothing to poll.
        self.absent = config.connection.inbound
        self._wake = asyncio.Event()
        #: Pushed notifications published, and the push target (its failure counts) when it pushes.
        self.pushes = 0
        self.last_push_ts: int | None = None
        self.push_target: PushTarget | None = None
        self._aborts: set[asyncio.Task[None]] = set()
        self._polls = bool(config.timeseries or config.attributes or config.meter_data)

    # -- schedule -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll forever on this meter's grid; ends only by cancellation."""
        period = self.config.poll_period_s
        offset = start_offset(self.name, period)
        planned = time.time() + offset
        try:
            while True:
                if await self._sleep_or_wake(planned):
                    planned = time.time()  # the meter just called in: poll it while it is there
                if self.absent or not self._polls:
                    planned = next_slot(time.time(), period, offset)
                    continue
                allowed, change = self.breaker.allow()
                self._breaker_changed(change)
                if allowed:
                    await self._poll_guarded()
                following = next_slot(time.time(), period, offset)
                self.missed_slots += slots_between(planned, following, period)
                planned = following
        finally:
            if self._poll_task is not None and not self._poll_task.done():
                self._poll_task.cancel()

    async def _poll_guarded(self) -> None:
        """One poll, bounded from outside: ``poll()``'s own deadline must not be the only one."""
        if self.stale.due():
            self._log.warning("%s: no good reading for %.0f s; rebuilding the session", self.name,
                              self.config.stale_after_s)
            await self.abort_session()
        self._poll_task = asyncio.create_task(self.poll(), name=f"poll {self.name}")
        # guard_task (a wait, not an await): a reconnect may cancel the poll without ending the schedule.
        if not await guard_task(self._poll_task, self.config.poll_timeout_s + 2 * self._close_bound):
            self.stuck_polls += 1
            self._log.warning("%s: poll stuck past its deadline; cancelled, session aborted", self.name)
            await self.abort_session()
            self._breaker_changed(self.breaker.record_failure())

    async def _sleep_or_wake(self, when: float) -> bool:
        """Sleep until ``when``, or until the meter calls in (True)."""
        if not self.config.connection.inbound:
            await self._sleep_until(when)
            return False
        sleeper = asyncio.ensure_future(self._sleep_until(when))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
        woken = self._wake.is_set()
        self._wake.clear()
        return woken

    def call_in(self, present: bool, reason: str | None = None) -> None:
        """The meter opened a connection to us (True) or its connection is gone (False)."""
        self.absent = not present
        if present:
            # The association of the last session lived on the meter's previous connection.
            stale, self.session = self.session, None
            self._attributes_read_at = None
            if stale is not None:
                task = asyncio.get_running_loop().create_task(stale.abort(), name=f"abort {self.name}")
                self._aborts.add(task)
                task.add_done_callback(self._aborts.discard)
            self._breaker_changed(self.breaker.reset())
            self._wake.set()
            return
        # Health says it (dlmsConnected false, lastError); the device stays connected at the gateway,
        # whose RPC routing (3.8.5) drops requests for a deleted device with a bare 408 "Request timeout":
        # kept, an RPC gets the clear "meter not connected" (or waits callInWaitS for it to call in).
        self._set_health(f"{self.name}: {reason or 'meter not connected'}")

    def publish_push(self, data: ConvertedData) -> None:
        """A push is data from the meter: it reconnects the device at ThingsBoard if it was away."""
        self.stale.good()
        if not self.on_platform:
            self.on_platform = True
            if self._presence is not None:
                self._presence(self, True)
        self._publish(data)

    async def _sleep_until(self, when: float) -> None:
        """Sleep, touching the association if the meter would drop it before the next poll."""
        keep_alive_every = self.config.connection.inactivity_timeout / 2
        while (delay := when - time.time()) > 0:
            if delay > keep_alive_every and self.session is not None and self.connected:
                await asyncio.sleep(keep_alive_every)
                await self._keep_alive()
            else:
                await asyncio.sleep(delay)

    async def _keep_alive(self) -> None:
        session = self.session
        if session is None:
            return
        try:
            await asyncio.wait_for(session.keep_alive(), self.config.poll_timeout_s)
        except Exception as exc:  # noqa: BLE001 - the next poll reports and recovers
            self._log.debug("%s: keep-alive failed: %s", self.name, describe_error(exc))

    # -- polling ------------------------------------------------------------------------------

    async def poll(self) -> bool:
        """Read the timeseries once (and the attributes after an association); never raises."""
        started = time.monotonic()
        error: str | None = None
        try:
            session = self._session()
            if self._timeseries:
                readings = await asyncio.wait_for(session.read(self._timeseries.refs), self.config.poll_timeout_s)
                self._send_telemetry(readings, int(time.time() * 1000))
        except TimeoutError:
            self.poll_timeouts += 1
            error = f"{self.name}: poll timed out after {self.config.poll_timeout_s:g} s"
            self.stats.record_error("poll_timeout", error)
            await self.abort_session()
        except Exception as exc:  # noqa: BLE001 - one meter's failure must not end its schedule
            error = self._naming_keys(exc, describe_error(exc))
            if not hasattr(exc, "kind"):  # sessions count their own errors; these are ours
                self.stats.record_error(type(exc).__name__, error)
                self._log.debug("%s: poll failed", self.name, exc_info=exc)
        self.stats.record_poll(time.monotonic() - started, error is None)
        if error is not None:
            self._log.warning("%s: poll failed: %s", self.name, error)
        self._set_health(error)
        identification = self.session.identification if error is None and self.session is not None else None
        if identification:  # an optical probe's mode E sign-on: which meter it is on
            self._send_changed({MODE_E_IDENTIFICATION: identification})
        if error is None and not self._timeseries:
            self.stale.good()
        self._breaker_changed(self.breaker.record_success() if error is None else self.breaker.record_failure())
        if error is None and self._attributes and self._attributes_read_at != self.stats.associations:
            await self._refresh_attributes()
        if error is None and self.collector is not None:
            self.collector.kick(self)
        return error is None

    def _naming_keys(self, exc: BaseException, error: str) -> str:
        """A refused reply (too large, malformed) names its attributes; the user knows them by key."""
        refs = set(getattr(exc, "refs", ()))
        keys = [p.key for p in self._timeseries.points + self._attributes.points if p.ref in refs]
        return f"{error} (key {', '.join(keys)})" if keys else error

    async def _refresh_attributes(self) -> None:
        """After each association: attributes rarely change, so they are not read every poll."""
        try:
            await asyncio.wait_for(self.read_attributes(), self.config.poll_timeout_s)
        except Exception as exc:  # noqa: BLE001 - retried after the next successful poll
            self._log.warning("%s: attributes not read: %s", self.name, describe_error(exc))

    async def read_attributes(self) -> dict:
        """Read the mapped attributes and publish them; the reply of the ``readAttributes`` RPC."""
        session = self._session()
        readings = await session.read(self._attributes.refs)
        good, bad = self._attributes.split(readings)
        self._attributes_read_at = self.stats.associations
        if good:
            data = ConvertedData(self.name, self.config.type)
            for key, value in good:
                data.add_to_attributes(key, value)
            self._publish(data)
        self._note_failures(bad)
        return {"attributes": {k.key: v for k, v in good},
                "errors": {f.point.key: f.error for f in bad}}

    async def get(self, ref: AttributeRef) -> dict:
        """One attribute on demand (RPC ``get``)."""
        reading = await self._session().get(ref)
        if reading.error is not None:
            return {"error": f"{self.name}: {ref} not read: {reading.error}"}
        out = {"obis": str(ref.obis), "classId": ref.class_id, "attribute": ref.attribute,
               "value": json_value(reading.value)}
        if reading.unit is not None:
            out["unit"] = reading.unit
        return out

    def _send_telemetry(self, readings: list, ts: int) -> None:
        good, bad = self._timeseries.split(readings)
        self.last_poll_ts = ts
        self._note_failures(bad)
        if not good:
            return
        self.stale.good()
        data = ConvertedData(self.name, self.config.type)
        data.add_to_telemetry(TelemetryEntry(dict(good), ts))
        if self._units_sent_at != self.stats.associations:
            # Units come with the scalers, read once per association: publish them then, as one
            # attribute, so dashboards can label values without a unit on every reading.
            by_key = dict(self.config.connection.unit_overrides_by_key)  # unitOverrides by key win
            units = {p.key: by_key.get(p.key, r.unit) for p, r in zip(self._timeseries.points, readings, strict=True)
                     if r.ok and (r.unit or p.key in by_key)}
            if units:
                data.add_to_attributes(DatapointKey(UNITS_ATTRIBUTE), units)
            self._units_sent_at = self.stats.associations
        self._publish(data)

    def _note_failures(self, failures: list[Failure]) -> None:
        """Count every failed attribute; log it when its error first appears or changes."""
        self.skipped_readings += len(failures)
        for failure in failures:
            if self._failing_keys.get(failure.point.key) != failure.error:
                self._failing_keys[failure.point.key] = failure.error
                self._log.warning("%s", failure.describe(self.name))
            else:
                self._log.debug("%s", failure.describe(self.name))

    def _set_health(self, error: str | None) -> None:
        self.connected = error is None
        if self.connected and not self.on_platform:
            self.on_platform = True  # its data (sent just before) has connected it again
            self._log.info("%s: meter answers again; connected at ThingsBoard", self.name)
            if self._presence is not None:
                self._presence(self, True)
        if error is not None:
            self.last_error = error
        health: dict[str, Any] = {HEALTH_CONNECTED: self.connected}
        if error is not None:
            health[HEALTH_LAST_ERROR] = error
        self._send_changed(health)

    def note_oversized(self, oversized: Any) -> None:
        """A value too large for ThingsBoard was dropped (gateway/payload_limit.py): said once per key."""
        self.oversized_values += 1
        message = oversized.describe(self.name)
        if self._oversized_keys.get(oversized.key) != oversized.size:
            self._oversized_keys[oversized.key] = oversized.size
            self._log.error("%s", message)
        self.last_error = message
        self._send_changed({HEALTH_LAST_ERROR: message})

    def note_storage(self, problem: str | None) -> None:
        """The gateway's storage refuses data (a full disk, a full memory storage) or takes it again:
        said once per episode, in the log and in ``lastError``; the counter counts every refusal."""
        if problem is not None:
            self.storage_refusals += 1
            if self.storage_error is not None:
                return
            self.storage_error = problem
            self._storage_refusing_since = time.time()
            self.last_error = f"gateway storage refuses data: {problem}"
            self._log.warning("%s: the gateway's storage refuses data (%s): live readings are lost until it takes "
                              "data again; profile intervals stay in the meter and are read again", self.name, problem)
            self._send_changed({HEALTH_LAST_ERROR: self.last_error})  # lost too while it refuses
        elif self.storage_error is not None:
            since = _dt_iso(self._storage_refusing_since)
            self._log.info("%s: the gateway's storage takes data again (refusing since %s, %d hand-over(s) "
                           "refused)", self.name, since, self.storage_refusals)
            error, self.storage_error = self.storage_error, None
            # What ThingsBoard could not be told while the storage refused: the gap in the readings.
            self.last_error = f"gateway storage refused data from {since} to {_dt_iso(time.time())}: {error}"
            self._send_changed({HEALTH_LAST_ERROR: self.last_error})

    def _breaker_changed(self, change: Transition | None) -> None:
        """Log and publish a breaker transition once, whatever the number of failed polls behind it."""
        if change is None:
            self._send_changed({HEALTH_BREAKER: self.breaker.state.value})  # first poll: initial state
            return
        if change.new is BreakerState.OPEN:
            self._log.warning("%s: circuit breaker open after %d consecutive failed poll(s); next probe in %.0f s",
                              self.name, change.consecutive_failures, change.cooldown_s or 0)
            self._send_changed({HEALTH_BREAKER: change.new.value})
            self._leave_platform()
            return
        elif change.new is BreakerState.HALF_OPEN:
            self._log.info("%s: circuit breaker half-open; probing the meter", self.name)
        else:
            self._log.info("%s: circuit breaker closed; meter answers again", self.name)
        self._send_changed({HEALTH_BREAKER: change.new.value})

    def _leave_platform(self) -> None:
        """The meter stopped answering (breaker open): disconnect it at ThingsBoard, after the health
        that says why, so its "active" state follows the meter, not the gateway's own connection."""
        if self._presence is None:
            return
        if self.absent:
            # A meter that calls in and hung up stays connected at ThingsBoard: the gateway answers
            # RPCs to a disconnected device with a bare 408 itself, ours say "meter not connected".
            return
        if self.on_platform:
            self.on_platform = False
            self.platform_disconnects += 1
            self._log.info("%s: not answering; disconnected at ThingsBoard until it answers again", self.name)
        self._presence(self, False)  # again on every re-open: the connector checks it took effect

    def _send_changed(self, health: dict[str, Any]) -> None:
        changed = {k: v for k, v in health.items() if self._health_sent.get(k) != v}
        if not self.on_platform:
            self._held.update(changed)  # published when the meter answers again
            self._health_sent.update(changed)
            return
        changed = {**self._held, **changed}
        self._held.clear()
        if not changed:
            return
        data = ConvertedData(self.name, self.config.type)
        for key, value in changed.items():
            data.add_to_attributes(DatapointKey(key), value)
        self._publish(data)
        self._health_sent.update(changed)

    # -- session ------------------------------------------------------------------------------

    def shared_session(self) -> SessionLike:
        """The meter's one session, shared with the polls, for RPCs and collections: made if there
        is none, not connected (operations queue on the session and associate on first use)."""
        return self._session()

    def _session(self) -> SessionLike:
        if self.session is None:
            session = self._factory(self.config.meter_settings())
            session.stats = self.stats
            self.session = session
        return self.session

    async def reset_session(self) -> None:
        """Close the session so the next use associates afresh; drop it if it will not close."""
        session = self.session
        self._attributes_read_at = None
        if session is None:
            return
        try:
            await asyncio.wait_for(session.close(), self._close_bound)
        except TimeoutError:
            self._log.warning("%s: session did not close within %g s; dropped", self.name, self._close_bound)
            self.session = None
            await session.abort()
        except Exception as exc:  # noqa: BLE001 - close() should never raise; if it does, start over
            self._log.warning("%s: session close failed (%s); dropped", self.name, describe_error(exc))
            self.session = None

    async def abort_session(self) -> None:
        """Drop the session without a word to the meter: after a missed deadline its state is unknown."""
        session, self.session = self.session, None
        self._attributes_read_at = None
        if session is None:
            return
        try:
            await asyncio.wait_for(session.abort(), self._close_bound)
        except Exception as exc:  # noqa: BLE001 - the session is gone either way
            self._log.debug("%s: session abort: %s", self.name, describe_error(exc))

    async def reconnect(self) -> dict:
        """Abandon any poll in flight and close the session: the next poll associates again."""
        poll = self._poll_task
        if poll is not None and not poll.done():
            poll.cancel()
            await asyncio.wait({poll}, timeout=self._close_bound)
        await self.reset_session()
        self.connected = False
        self._breaker_changed(self.breaker.reset())
        self._log.info("%s: session closed on request; next poll re-associates", self.name)
        return {"success": True, "device": self.name}

    async def close(self) -> None:
        poll = self._poll_task
        if poll is not None and not poll.done():
            poll.cancel()
            await asyncio.wait({poll}, timeout=self._close_bound)
        if self.collector is not None:
            await self.collector.stop()
        await self.reset_session()

    # -- reporting ----------------------------------------------------------------------------

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
