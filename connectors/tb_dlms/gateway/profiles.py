"""Load profiles and event logs: every captured row to ThingsBoard once, with the meter's timestamp.

The meter keeps its intervals for weeks; we only need to remember up to which capture we
delivered (the cursor). Each collection reads from the cursor to now, in windows, and advances
the cursor only after the gateway accepted the rows, so a link, gateway or ThingsBoard outage
leaves a gap that the next collection fills from the meter's own buffer. A window's rows are
handed over only once the previous window's cursor is on disk (``settled``), so a gateway killed
mid-backfill re-sends at most the one window that was not yet settled. A meter that refuses
range selectors is read by entry, backwards from the newest entry until the gap is covered.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

from thingsboard_gateway.gateway.entities.datapoint_key import DatapointKey
from thingsboard_gateway.gateway.entities.report_strategy_config import ReportStrategyConfig
from thingsboard_gateway.gateway.entities.telemetry_entry import TelemetryEntry

from ..config.meter_data import Archive, EventLogConfig, ProfileConfig
from ..protocol.errors import AccessError
from ..protocol.obis import ObisCode
from ..protocol.profile import CaptureObject, ProfileData, ProfileRow
from .convert import json_value
from .cursors import Cursor, CursorStore
from .events import event_name
from .sessions import SessionLike

#: Interval data must reach ThingsBoard even when the connector filters unchanged values.
EVERY_ROW = ReportStrategyConfig({"type": "ON_RECEIVED"})
#: Rows per hand-over to the gateway: progress is saved at least this often during a backfill.
BATCH_ROWS = 96
#: Entries read per request when the meter refuses ranges and the capture period is unknown.
ENTRY_CHUNK = 96
#: Cursors remembered per archive for going back after a meter clock was set back (one per batch).
HISTORY = 256
#: Clock flags that make a row's timestamp questionable (daylight saving alone is normal).
DOUBTFUL_CLOCK = ("invalid", "doubtful", "differentClockBase", "invalidClockStatus")
UTC = _dt.timezone.utc

#: Hands profile rows (already converted to telemetry entries) on; False: refused, the cursor stays.
DeliverEntries = Callable[[list[TelemetryEntry]], bool]
#: Waits until the rows handed over so far are in the gateway's storage; False: stop collecting.
Settled = Callable[[], Awaitable[bool]]


async def _always_settled() -> bool:
    return True


def to_datetime(ms: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ms / 1000, UTC)


def after_cursor(rows: Sequence[ProfileRow], cursor: Cursor | None) -> list[ProfileRow]:
    """Rows not yet delivered, oldest first (a clock set back can leave the buffer out of order)."""
    fresh = []
    at_cursor = 0
    for row in rows:
        ts = row.timestamp_ms
        if ts is None:
            continue
        if cursor is not None:
            if ts < cursor.ts:
                continue
            if ts == cursor.ts:
                at_cursor += 1
                if at_cursor <= cursor.at_ts:
                    continue
        fresh.append(row)
    fresh.sort(key=lambda r: r.timestamp_ms or 0)  # every row here has one (checked above)
    return fresh


def cursor_after(rows: Sequence[ProfileRow], cursor: Cursor | None) -> Cursor:
    """Where the cursor stands once ``rows`` (from ``after_cursor``) are delivered."""
    last = rows[-1].timestamp_ms
    if last is None:
        raise ValueError("cursor_after() takes rows from after_cursor(), which all have a timestamp")
    same = sum(1 for r in rows if r.timestamp_ms == last)
    if cursor is not None and cursor.ts == last:
        same += cursor.at_ts
    return Cursor(last, same)


class ProfileColumns:
    """Which column of a load profile goes under which key, resolved against the meter's layout."""

    def __init__(self, config: ProfileConfig, columns: Sequence[CaptureObject]) -> None:
        self.mapped: list[tuple[int, DatapointKey]] = []
        self.missing: list[str] = []
        for index, key in config.columns_by_index:
            if index >= len(columns):
                self.missing.append(f"column {index} ({key}): the profile has {len(columns)} columns")
            elif not columns[index].is_clock:
                self.mapped.append((index, DatapointKey(key, EVERY_ROW)))
        for obis, key in config.columns_by_obis:
            found = next((i for i, c in enumerate(columns) if c.ref.obis == obis and not c.is_clock), None)
            if found is None:
                self.missing.append(f"{obis} ({key}) is not captured")
            else:
                self.mapped.append((found, DatapointKey(key, EVERY_ROW)))
        self.status_key = DatapointKey(config.status_key, EVERY_ROW) if config.status_key else None

    def entries(self, rows: Sequence[ProfileRow], cursor: Cursor | None) -> list[TelemetryEntry]:
        out = []
        for row in rows:
            values = {}
            for index, key in self.mapped:
                value = json_value(row.values[index]) if index < len(row.values) else None
                if value is not None:
                    values[key] = value
            flags = [s for s in row.clock_status if s in DOUBTFUL_CLOCK]
            if flags and self.status_key is not None:
                values[self.status_key] = ",".join(flags)
            if values:
                out.append(TelemetryEntry(values, row.timestamp_ms))
        return out


class EventColumns:
    """An event log row as ``eventCode``/``eventName`` at the event's time.

    Events logged in the same second get 1 ms apart: ThingsBoard keeps one value per key and
    timestamp, and a power-down followed by a power-up in one second must both survive.
    """

    def __init__(self, config: EventLogConfig, columns: Sequence[CaptureObject]) -> None:
        self.missing: list[str] = []
        if config.code_column is not None:
            index = next((i for i, c in enumerate(columns) if c.ref.obis == config.code_column), None)
            if index is None:
                self.missing.append(f"{config.code_column} (event code) is not captured")
        else:
            index = next((i for i, c in enumerate(columns) if not c.is_clock), None)
            if index is None:
                self.missing.append("the log captures no event code column")
        self.index = index
        self.code_key = DatapointKey(config.code_key, EVERY_ROW)
        self.name_key = DatapointKey(config.name_key, EVERY_ROW) if config.name_key else None
        self.names = dict(config.names)

    def entries(self, rows: Sequence[ProfileRow], cursor: Cursor | None) -> list[TelemetryEntry]:
        if self.index is None:
            return []
        out = []
        previous, same = (cursor.ts, cursor.at_ts) if cursor is not None else (None, 0)
        for row in rows:
            ts = row.timestamp_ms
            if ts is None:  # after_cursor() already dropped these
                continue
            same = same + 1 if ts == previous else 1
            previous = ts
            code = row.values[self.index] if self.index < len(row.values) else None
            if code is None:
                continue
            values = {self.code_key: json_value(code)}
            if self.name_key is not None and isinstance(code, int):
                values[self.name_key] = event_name(code, self.names)
            out.append(TelemetryEntry(values, ts + same - 1))
        return out


def columns_for(config: Archive, columns: Sequence[CaptureObject]):
    if isinstance(config, EventLogConfig):
        return EventColumns(config, columns)
    return ProfileColumns(config, columns)  # type: ignore[arg-type]


# -- reading ----------------------------------------------------------------------------------


async def read_by_entry_back_to(session: SessionLike, obis: str, floor_ms: int, chunk: int,
                                timeout_s: float) -> ProfileData:
    """The newest entries, read backwards in chunks until a row at or before ``floor_ms`` (or entry 1)."""
    total = await asyncio.wait_for(session.profile_entries(obis), timeout_s)
    data: ProfileData | None = None
    rows: list[ProfileRow] = []
    last = total
    chunk = max(chunk, 1)
    while last >= 1:
        first = max(1, last - chunk + 1)
        part = await asyncio.wait_for(session.read_profile(obis, entries=(first, last)), timeout_s)
        data = data or part
        rows[0:0] = part.rows
        stamps = [r.timestamp_ms for r in part.rows if r.timestamp_ms is not None]
        if not part.rows or (stamps and min(stamps) <= floor_ms):
            break
        last = first - 1
    if data is None:
        return ProfileData(ObisCode.parse(obis), [], [])
    data.rows = rows
    return data


@dataclass
class Collected:
    delivered: int = 0
    reads: int = 0
    #: More to read than one collection may do (a long backfill): collect again at once.
    backlog: bool = False


class ArchiveReader:
    """One profile or event log of one meter and its cursor."""

    def __init__(self, meter: str, config: Archive, cursors: CursorStore, log: logging.Logger) -> None:
        self.meter = meter
        self.config = config
        self.obis = str(config.obis)
        self.cursors = cursors
        self.log = log
        #: Learnt when the meter refuses a range selector; kept for the life of the connector.
        self.by_entry = False
        self.period_s: int | None = None
        self.next_due = 0.0
        self.backlog = True
        self.delivered = 0
        self.last_error: str | None = None
        #: Range reads found nothing before this (ms): a backfill horizon beyond the meter's buffer.
        self._empty_before: int | None = None
        self._warned: set[str] = set()
        self._settled: Settled = _always_settled
        #: Cursors reached lately, oldest first: where to go back to once a meter clock is set back.
        self._history: deque[Cursor] = deque(maxlen=HISTORY)

    @property
    def cursor(self) -> Cursor | None:
        return self.cursors.get(self.meter, self.obis)

    def rewind(self, meter_now_ms: int) -> Cursor | None:
        """The cursor stands ahead of the meter's clock (it was set back): go back to the newest
        cursor this connector reached that is not ahead of it, so the rows the meter captures from
        its corrected time on are read; without one (e.g. after a restart), back to the horizon.
        Returns where reading resumes (None: the horizon)."""
        back = next((c for c in reversed(self._history) if c.ts <= meter_now_ms), None)
        self._history.clear()
        if back is None:
            self.cursors.reset(self.meter, self.obis)
        else:
            self.cursors.advance(self.meter, self.obis, back)
            self._history.append(back)
        self.backlog = True
        return back

    def _floor(self, now_ms: int) -> int:
        horizon = now_ms - int(self.config.horizon_days * 86_400_000)
        cursor = self.cursor
        if cursor is None:
            return horizon
        if cursor.ts < horizon and "horizon" not in self._warned:
            self._warned.add("horizon")
            self.log.warning("%s: %s last delivered %s, beyond the %g-day horizon: intervals before %s are "
                             "not backfilled", self.meter, self.obis, to_datetime(cursor.ts).isoformat(),
                             self.config.horizon_days, to_datetime(horizon).isoformat())
        return max(cursor.ts, horizon)

    async def collect(self, session: SessionLike, deliver: DeliverEntries, now_ms: int, timeout_s: float,
                      max_reads: int = 8, settled: Settled = _always_settled) -> Collected:
        """Read what the meter captured since the cursor and hand it over; raises on meter errors."""
        result = Collected()
        self._settled = settled
        if not self.by_entry:
            try:
                await self._collect_by_range(session, deliver, now_ms, timeout_s, max_reads, result)
                return result
            except AccessError as exc:
                if result.reads:  # ranges worked before: this refusal is about something else
                    raise
                refused = exc
            try:
                await self._collect_by_entry(session, deliver, now_ms, timeout_s, result)
            except AccessError:
                raise refused from None
            self.by_entry = True
            self.log.info("%s: %s refuses range selectors (%s); reading it by entry", self.meter, self.obis, refused)
            return result
        await self._collect_by_entry(session, deliver, now_ms, timeout_s, result)
        return result

    async def _collect_by_range(self, session: SessionLike, deliver: DeliverEntries, now_ms: int, timeout_s: float,
                                max_reads: int, result: Collected) -> None:
        start = self._floor(now_ms)
        if self._empty_before is not None and self.cursor is None:
            start = max(start, self._empty_before)
        window = int(self.config.window_hours * 3_600_000)
        settled = now_ms - 2 * max(self.period_s or 0, 60) * 1000
        while True:
            # Not clipped to now: a meter clock running ahead has rows stamped after our now.
            end = start + window
            data = await asyncio.wait_for(
                session.read_profile(self.obis, to_datetime(start), to_datetime(end),
                                     local_offset_min=self.config.range_offset_min), timeout_s)
            result.reads += 1
            self.period_s = data.capture_period or None
            if not await self._settled_before(data, result):
                return
            if not self._hand_over(data, deliver, result):
                return
            if not data.rows and end <= settled and self.cursor is None:
                self._empty_before = end
            if end >= now_ms:
                result.backlog = False
                return
            if result.reads >= max_reads:
                result.backlog = True
                return
            start = end

    async def _collect_by_entry(self, session: SessionLike, deliver: DeliverEntries, now_ms: int, timeout_s: float,
                                result: Collected) -> None:
        floor = self._floor(now_ms)
        chunk = ENTRY_CHUNK
        if self.period_s:
            # Just enough entries to reach back to the cursor, plus one for a capture in between.
            chunk = max(2, min(math.ceil((now_ms - floor) / 1000 / self.period_s) + 2,
                               int(self.config.window_hours * 3600 / self.period_s) or 1))
        data = await read_by_entry_back_to(session, self.obis, floor, chunk, timeout_s)
        result.reads += 1
        self.period_s = data.capture_period or self.period_s
        horizon = now_ms - int(self.config.horizon_days * 86_400_000)
        data.rows = [r for r in data.rows if r.timestamp_ms is not None and r.timestamp_ms >= horizon]
        result.backlog = False
        if await self._settled_before(data, result):
            self._hand_over(data, deliver, result)

    async def _settled_before(self, data: ProfileData, result: Collected) -> bool:
        """Wait for the previous window's cursor to be saved before handing over this one.

        Without it a backfill queues window after window while the cursor file lags SETTLE_S behind,
        and a kill -9 re-sent everything since the last write (2592 rows for 1920 intervals after
        three kills). The wait overlaps nothing on the meter link; it costs about SETTLE_S per window.
        """
        if not after_cursor(data.rows, self.cursor):
            return True
        if await self._settled():
            return True
        result.backlog = False  # gateway stopping or storage refusing: the rest comes when next due
        return False

    def _hand_over(self, data: ProfileData, deliver: DeliverEntries, result: Collected) -> bool:
        """Deliver the new rows batch by batch; the cursor follows each accepted batch. False: stop."""
        cursor = self.cursor
        fresh = after_cursor(data.rows, cursor)
        if not fresh:
            return True
        columns = columns_for(self.config, data.columns)
        for problem in columns.missing:
            if problem not in self._warned:
                self._warned.add(problem)
                self.log.warning("%s: %s: %s", self.meter, self.obis, problem)
        for i in range(0, len(fresh), BATCH_ROWS):
            batch = fresh[i:i + BATCH_ROWS]
            entries = columns.entries(batch, cursor)
            if entries and not deliver(entries):
                self.last_error = "gateway storage refused the rows; retried on the next collection"
                self.log.warning("%s: %s: %s", self.meter, self.obis, self.last_error)
                return False
            cursor = cursor_after(batch, cursor)
            self.cursors.advance(self.meter, self.obis, cursor)
            self._history.append(cursor)
            result.delivered += len(entries)
            self.delivered += len(entries)
        return True


# -- on demand (RPC readProfile) --------------------------------------------------------------


async def read_range(session: SessionLike, obis: str, start_ms: int, end_ms: int, *, by_entry: bool, timeout_s: float,
                     local_offset_min: int | None = None,
                     on_range_refused: Callable[[AccessError], Awaitable[None] | None] | None = None) -> ProfileData:
    """Rows captured in [start, end], by range if the meter allows it, else by entry."""
    if not by_entry:
        try:
            return await asyncio.wait_for(
                session.read_profile(obis, to_datetime(start_ms), to_datetime(end_ms),
                                     local_offset_min=local_offset_min), timeout_s)
        except AccessError as exc:
            if on_range_refused is not None:
                on_range_refused(exc)
    data = await read_by_entry_back_to(session, obis, start_ms, ENTRY_CHUNK, timeout_s)
    data.rows = [r for r in data.rows if r.timestamp_ms is not None and start_ms <= r.timestamp_ms <= end_ms]
    return data
