"""The schedule and failure policy of one meter, in one class (as Home Assistant's DataUpdateCoordinator).

It decides when the meter is read (its slot on the poll grid, or at once when it calls in), how long a
poll may take (its own deadline, and a watchdog guard from outside when that one fails), when to stop
asking (the circuit breaker), when to rebuild the session (the stale timer, a missed deadline), and which
session the polls, RPCs and collections share. What a poll's readings become -- telemetry, attributes,
health, profiles -- is the business of the listeners registered with it, each told once per poll in the
order registered: ThingsBoard sees telemetry, then health, then attributes, as before the split.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

from ..config.schema import DeviceConfig
from ..protocol.readings import Reading
from ..protocol.stats import SessionStats
from ..resilience.breaker import CircuitBreaker, Transition
from ..resilience.stale import StaleTimer
from ..resilience.watchdog import guard_task
from .schedule import next_slot, slots_between, start_offset
from .sessions import SessionFactory, SessionLike

#: Seconds a session gets to release its association before it is dropped (stop, reconnect, timeout).
CLOSE_BOUND_S = 1.0


def describe_error(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class PollDone:
    """What each listener is told after a poll: the readings (none after a failure) or the error."""

    error: str | None
    #: One per timeseries point, in configuration order; empty when the poll failed or read nothing.
    readings: list[Reading]
    #: Milliseconds since the epoch when the readings arrived.
    ts: int
    #: The meter's counters; ``associations`` tells a listener whether the association is a new one.
    stats: SessionStats
    #: The meter's one session, for a listener that reads more on it (made again if it was dropped).
    session: Callable[[], SessionLike]
    #: What this poll did to the breaker (None: nothing changed).
    breaker: Transition | None
    #: An optical probe's mode E sign-on, when the session has one.
    identification: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class PollListener:
    """What consumes a poll; override what you need. Listeners never raise into the schedule."""

    async def poll_done(self, poll: PollDone) -> None:
        """After every poll that ran (not after a slot the breaker skipped)."""

    def breaker_changed(self, change: Transition | None) -> None:
        """A breaker transition outside a poll's outcome (probe allowed, reset, stuck poll);
        None: the breaker was asked and stayed as it is."""

    def call_ended(self) -> None:
        """A meter that calls in closed its connection (or another replaced it): not polled until
        it calls again."""


class MeterCoordinator:
    def __init__(self, config: DeviceConfig, session_factory: SessionFactory, log: logging.Logger,
                 close_bound_s: float = CLOSE_BOUND_S) -> None:
        self.config = config
        self.name = config.name
        self.stats = SessionStats()
        self.session: SessionLike | None = None
        #: The last poll succeeded (and nothing closed the session since).
        self.connected = False
        #: Bumped whenever the session is dropped or closed: data read "once per association" is
        #: read again even when the next association does not change the association count.
        self.session_drops = 0
        self.missed_slots = 0
        self.poll_timeouts = 0
        #: Polls that outlived their deadline plus grace and were cancelled from outside.
        self.stuck_polls = 0
        self.breaker = CircuitBreaker(config.breaker)
        self.stale = StaleTimer(config.stale_after_s)
        #: A meter that calls in (connection.listener) and has no connection open: nothing to poll.
        self.absent = config.connection.inbound
        self._factory = session_factory
        self._log = log
        self._close_bound = close_bound_s
        self._listeners: list[PollListener] = []
        self._poll_task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._aborts: set[asyncio.Task[None]] = set()
        self._polls = bool(config.timeseries or config.attributes or config.meter_data)

    def add_listener(self, listener: PollListener) -> None:
        self._listeners.append(listener)

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

    def call_in(self, present: bool) -> None:
        """The meter opened a connection to us (True: poll it now) or its connection is gone."""
        self.absent = not present
        if not present:
            self.connected = False
            for listener in self._listeners:
                listener.call_ended()
            return
        # The association of the last session lived on the meter's previous connection.
        stale, self.session = self.session, None
        self.session_drops += 1
        if stale is not None:
            task = asyncio.get_running_loop().create_task(stale.abort(), name=f"abort {self.name}")
            self._aborts.add(task)
            task.add_done_callback(self._aborts.discard)
        self._breaker_changed(self.breaker.reset())
        self._wake.set()

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

    # -- one poll -----------------------------------------------------------------------------

    async def poll(self) -> bool:
        """Read the timeseries once and tell the listeners; never raises."""
        started = time.monotonic()
        error: str | None = None
        readings: list[Reading] = []
        refs = [p.ref for p in self.config.timeseries]
        try:
            session = self._session()
            if refs:
                readings = await asyncio.wait_for(session.read(refs), self.config.poll_timeout_s)
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
        self.connected = error is None
        if error is None and not refs:
            self.stale.good()  # nothing to read live: the association itself is the good news
        change = self.breaker.record_success() if error is None else self.breaker.record_failure()
        done = PollDone(error, readings, int(time.time() * 1000), self.stats, self.shared_session, change,
                        self.session.identification if error is None and self.session is not None else None)
        for listener in self._listeners:
            await self._tell(listener, done)
        return error is None

    async def _tell(self, listener: PollListener, done: PollDone) -> None:
        try:
            await listener.poll_done(done)
        except Exception:  # noqa: BLE001 - what one consumer does wrong must not end the schedule
            self._log.exception("%s: %s failed on a poll", self.name, type(listener).__name__)

    def _naming_keys(self, exc: BaseException, error: str) -> str:
        """A refused reply (too large, malformed) names its attributes; the user knows them by key."""
        refs = set(getattr(exc, "refs", ()))
        keys = [p.key for p in (*self.config.timeseries, *self.config.attributes) if p.ref in refs]
        return f"{error} (key {', '.join(keys)})" if keys else error

    def _breaker_changed(self, change: Transition | None) -> None:
        for listener in self._listeners:
            listener.breaker_changed(change)

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
        self.session_drops += 1
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
        self.session_drops += 1
        if session is None:
            return
        try:
            await asyncio.wait_for(session.abort(), self._close_bound)
        except Exception as exc:  # noqa: BLE001 - the session is gone either way
            self._log.debug("%s: session abort: %s", self.name, describe_error(exc))

    async def stop_polling(self) -> None:
        """Abandon any poll in flight (bounded: a poll that will not end is left behind)."""
        poll = self._poll_task
        if poll is not None and not poll.done():
            poll.cancel()
            await asyncio.wait({poll}, timeout=self._close_bound)

    async def reconnect(self) -> None:
        """Abandon any poll in flight and close the session: the next poll associates again."""
        await self.stop_polling()
        await self.reset_session()
        self.connected = False
        self._breaker_changed(self.breaker.reset())
        self._log.info("%s: session closed on request; next poll re-associates", self.name)
