"""What a meter keeps beyond its live registers, collected after each successful poll.

A listener of the meter's coordinator (gateway/coordinator.py): the poll's notification carries all it
needs (the shared session, the association count), so nothing here calls back into the device.

The poll shows the meter is reachable; then, on the same association, the clock is checked once
per association and each profile or event log is read when due (or at once while a backfill is
still catching up). Nothing here raises into the poll: a meter that refuses a profile still
reports its registers.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from thingsboard_gateway.gateway.entities.converted_data import ConvertedData
from thingsboard_gateway.gateway.entities.datapoint_key import DatapointKey
from thingsboard_gateway.gateway.entities.telemetry_entry import TelemetryEntry

from ..config.meter_data import ClockConfig, MeterDataConfig
from .clock import ClockReading, read_clock, sync_clock
from .coordinator import PollDone, PollListener
from .cursors import CursorStore
from .profiles import ArchiveReader, Collected, to_datetime
from .sessions import SessionLike

#: A failed automatic clock sync is not retried sooner than this (a meter refusing it would be
#: written to at every association otherwise).
AUTO_SYNC_RETRY_S = 3600.0
#: Least time one profile read may take: block transfers of a day of intervals take a while.
MIN_READ_TIMEOUT_S = 30.0
#: After a failed read, retry no later than this even when the profile is read rarely.
RETRY_AFTER_S = 60.0
#: A cursor this far ahead of a clock is ahead of it (clock reads are good to about a second).
CLOCK_SLACK_S = 60.0

#: Hands one batch of converted data to the gateway (its storage); False: refused, keep it.
DeliverConverted = Callable[[ConvertedData], bool]


def _iso(cursor) -> str:
    return to_datetime(cursor.ts).isoformat() if cursor is not None else "the configured horizon"


class MeterDataCollector(PollListener):
    """Profiles, event logs and the clock of one meter: a listener of its polls."""

    def __init__(self, name: str, device_type: str, config: MeterDataConfig, cursors: CursorStore,
                 deliver: DeliverConverted, gateway_running: Callable[[], bool], log: logging.Logger,
                 read_timeout_s: float = MIN_READ_TIMEOUT_S,
                 queue_drained: Callable[[], bool] = lambda: False) -> None:
        self.name = name
        self.device_type = device_type
        self.config = config
        self.cursors = cursors
        self.readers = [ArchiveReader(name, a, cursors, log) for a in config.archives]
        self._deliver = deliver
        self._gateway_running = gateway_running
        self._queue_drained = queue_drained
        self._log = log
        self.read_timeout_s = max(read_timeout_s, MIN_READ_TIMEOUT_S)
        self.clock: ClockReading | None = None
        self.clock_error: str | None = None
        self.clock_syncs = 0
        self._clock_read_at: int | None = None
        self._last_auto_sync = -AUTO_SYNC_RETRY_S
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    def reader(self, obis: str) -> ArchiveReader | None:
        return next((r for r in self.readers if r.obis == obis), None)

    @property
    def drift_s(self) -> float | None:
        return self.clock.drift_s if self.clock is not None else None

    # -- after each poll ------------------------------------------------------------------------

    async def poll_done(self, poll: PollDone) -> None:
        """After a good poll, start a collection unless one is running; it shares the poll's session.

        It runs beside the poll schedule rather than inside a poll: a backfill of days of
        intervals must neither hold up the registers nor count as a stuck poll.
        """
        if not poll.ok or not (self.readers or self.config.clock is not None):
            return
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.get_running_loop().create_task(self._run(poll), name=f"collect {self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        self.close()

    async def _run(self, poll: PollDone) -> None:
        stats = poll.stats  # live counters: a clock read that re-associated is seen as it happened
        try:
            if self.config.clock is not None and self._clock_read_at != stats.associations:
                await self._check_clock(poll.session())
                self._clock_read_at = stats.associations
            for reader in self.readers:
                while reader.backlog or time.monotonic() >= reader.next_due:
                    result = await self._collect(reader, poll.session())
                    if result is None or not result.backlog:
                        break
        finally:
            self._flush_soon()

    async def _collect(self, reader: ArchiveReader, session: SessionLike) -> Collected | None:
        await self._cursor_not_ahead_of_meter(reader, session)
        now_ms = self._meter_now_ms()
        reader.last_error = None  # what goes wrong in this collection sets it again
        try:
            result = await reader.collect(session, self.deliver_entries, now_ms, self.read_timeout_s,
                                          settled=lambda: self._settled(reader))
        except Exception as exc:  # noqa: BLE001 - the poll goes on; the gap is read next time
            reader.last_error = f"{reader.obis}: {exc or type(exc).__name__}"
            reader.next_due = time.monotonic() + min(reader.config.read_every_s, RETRY_AFTER_S)
            self._log.warning("%s: %s not collected: %s", self.name, reader.obis, reader.last_error)
            return None
        reader.backlog = result.backlog
        reader.next_due = time.monotonic() + reader.config.read_every_s
        if result.delivered:
            cursor = reader.cursor
            self._log.info("%s: %s: %d row(s) delivered in %d read(s), up to %s%s", self.name, reader.obis,
                           result.delivered, result.reads, to_datetime(cursor.ts).isoformat() if cursor else "-",
                           " (more to read)" if result.backlog else "")
        return result

    async def _cursor_not_ahead_of_meter(self, reader: ArchiveReader, session) -> None:
        """A cursor ahead of the meter's clock means the clock ran ahead and was set back: every row
        captured after the correction would be taken for delivered. Checked (one clock read) only
        while the cursor is ahead of the gateway's own clock, the one case where it can happen."""
        cursor = reader.cursor
        if cursor is None or cursor.ts <= (time.time() + CLOCK_SLACK_S) * 1000:
            return
        try:
            reading = await read_clock(session, self.config.clock or ClockConfig(), self.read_timeout_s)
        except Exception as exc:  # noqa: BLE001 - not checked now; the collection goes on as before
            self._log.warning("%s: %s: cursor %s is ahead of the gateway's clock and the meter clock could not "
                              "be read to check it: %s", self.name, reader.obis, to_datetime(cursor.ts).isoformat(),
                              exc or type(exc).__name__)
            return
        self.clock = reading  # its drift says how far ahead of us the meter's rows may be stamped
        meter_ms = int(reading.meter_time.timestamp() * 1000)
        if cursor.ts <= meter_ms + CLOCK_SLACK_S * 1000:
            return
        back = reader.rewind(meter_ms)
        self._log.warning("%s: %s: cursor %s is ahead of the meter's clock (%s): the clock was set back; reading "
                          "again from %s, rows delivered since then come once more", self.name, reader.obis,
                          to_datetime(cursor.ts).isoformat(), reading.meter_time.isoformat(),
                          to_datetime(back.ts).isoformat() if back else "the configured horizon")

    def _meter_now_ms(self) -> int:
        """Read up to the meter's own now: a meter running ahead has rows stamped after ours."""
        ahead = max(0.0, self.drift_s or 0.0)
        return int((time.time() + ahead + 1) * 1000)

    async def _check_clock(self, session: SessionLike) -> None:
        clock = self.config.clock
        assert clock is not None
        try:
            self.clock = await read_clock(session, clock, self.read_timeout_s)
        except Exception as exc:  # noqa: BLE001 - reported in getStats; polling goes on
            self.clock_error = str(exc) or type(exc).__name__
            self._log.warning("%s: clock not checked: %s", self.name, self.clock_error)
            return
        self.clock_error = None
        drift = self.clock.drift_s
        ts = int(self.clock.gateway_time.timestamp() * 1000)
        self.deliver_entries([TelemetryEntry({DatapointKey(clock.drift_key): drift}, ts)])
        threshold = clock.auto_sync_threshold_s
        if threshold is None or abs(drift) <= threshold:
            return
        if time.monotonic() - self._last_auto_sync < AUTO_SYNC_RETRY_S:
            return
        self._last_auto_sync = time.monotonic()
        try:
            result = await sync_clock(session, clock, self.read_timeout_s)
        except Exception as exc:  # noqa: BLE001
            self._log.warning("%s: clock off by %.1f s (threshold %g s) but not set: %s", self.name, drift,
                              threshold, exc or type(exc).__name__)
            return
        self.clock_syncs += 1
        self._log.info("%s: clock was off by %.1f s (threshold %g s); set, now off by %.1f s", self.name,
                       drift, threshold, result["driftAfterS"])

    # -- hand-over -------------------------------------------------------------------------------

    async def _settled(self, reader: ArchiveReader) -> bool:
        """Wait until the cursor of the rows ``reader`` handed over so far is written; False: stop
        collecting (the gateway is stopping, or its storage refused data: read again when due)."""
        while True:
            self.cursors.flush(self._gateway_running())
            if self.cursors.rolled_back(self.name, reader.obis):
                reader.last_error = (f"{reader.obis}: the gateway's storage refused data; rows from "
                                     f"{_iso(reader.cursor)} on are read again from the meter")
                return False
            remaining = self.cursors.settles_in(self.name, reader.obis)
            if remaining is None:
                return True
            if not self._gateway_running():
                return False
            await asyncio.sleep(max(0.02, remaining))

    def deliver_entries(self, entries: list[TelemetryEntry]) -> bool:
        data = ConvertedData(self.name, self.device_type)
        data.add_to_telemetry(entries)
        return self._deliver(data)

    def _flush_soon(self) -> None:
        """Save settled cursors now, and again once the latest rows have settled."""
        self.cursors.flush(self._gateway_running())
        loop = asyncio.get_running_loop()
        # A timer of a replaced (stuck) loop never fires: schedule on the running one.
        if self.cursors.pending and (self._flush_timer is None or self._flush_loop is not loop):
            self._flush_loop = loop
            self._flush_timer = loop.call_later(self.cursors.settle_s + 0.2, self._flush_later)

    def _flush_later(self) -> None:
        self._flush_timer = None
        self._flush_soon()

    def close(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self.cursors.flush(self._gateway_running(), self._queue_drained())

    # -- reporting -------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.readers:
            archives = {}
            for r in self.readers:
                cursor = r.cursor
                archives[r.obis] = {
                    "deliveredUpTo": to_datetime(cursor.ts).isoformat() if cursor else None,
                    "rowsDelivered": r.delivered,
                    "byEntry": r.by_entry,
                    "backlog": r.backlog,
                    "lastError": r.last_error,
                }
            out["archives"] = archives
        if self.config.clock is not None:
            out["clockDriftS"] = self.drift_s
            out["clockError"] = self.clock_error
            out["clockSyncs"] = self.clock_syncs
        return out
