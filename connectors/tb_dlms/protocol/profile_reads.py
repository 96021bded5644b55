"""How to read what a profile captured since a point in time: by range, or by entry when refused.

A range selector (selective access 1) asks the meter for exactly the rows between two times;
read window by window, a long backfill never asks for one huge block transfer. Some meters
refuse range selectors (an access error): they are read by entry (selective access 2), backwards
from the newest entry in chunks until a row at or before the point asked for, since an entry
number says nothing about its time. What a profile taught us (refuses ranges, capture period) is
kept in a ``ProfileReadState`` by the caller, for the life of the connector.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import math
from dataclasses import dataclass
from typing import AsyncGenerator, Final, Protocol

from .errors import AccessError
from .obis import ObisCode
from .profile import ProfileData, ProfileRow

#: Entries read per request when the meter refuses ranges and the capture period is unknown.
ENTRY_CHUNK: Final = 96
_UTC: Final = _dt.timezone.utc


class ProfileSession(Protocol):
    """What these reads need of a meter session (``MeterSession`` and the gateway's ``SessionLike``)."""

    async def read_profile(self, obis: ObisCode | str, start: _dt.datetime | None = None,
                           end: _dt.datetime | None = None, *, entries: tuple[int, int] | None = None,
                           local_offset_min: int | None = None) -> ProfileData: ...

    async def profile_entries(self, obis: ObisCode | str) -> int: ...


@dataclass(slots=True)
class ProfileReadState:
    """What reading one profile taught us."""

    #: The meter refused a range selector: read by entry from now on.
    by_entry: bool = False
    #: Seconds between captures, from the last read (None: not known, or an event log).
    period_s: int | None = None


@dataclass(slots=True)
class ProfileWindow:
    """One read of ``read_profile_since``: its rows, and up to when it read."""

    data: ProfileData
    #: End of the range read (ms); None for a read by entry, which reads up to the newest entry.
    end_ms: int | None
    #: The range read of this collection's first window was refused, and this window was read by entry instead.
    range_refused: AccessError | None = None

    @property
    def by_entry(self) -> bool:
        return self.end_ms is None


def _utc(ms: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ms / 1000, _UTC)


async def read_by_entry_back_to(session: ProfileSession, obis: str, floor_ms: int, chunk: int,
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


def _entry_chunk(state: ProfileReadState, since_ms: int, now_ms: int, window_ms: int) -> int:
    if not state.period_s:
        return ENTRY_CHUNK
    # Just enough entries to reach back to ``since``, plus one for a capture in between.
    return max(2, min(math.ceil((now_ms - since_ms) / 1000 / state.period_s) + 2,
                      int(window_ms / 1000 / state.period_s) or 1))


async def _by_entry(session: ProfileSession, obis: str, state: ProfileReadState, since_ms: int, now_ms: int,
                    window_ms: int, timeout_s: float) -> ProfileData:
    data = await read_by_entry_back_to(session, obis, since_ms, _entry_chunk(state, since_ms, now_ms, window_ms),
                                       timeout_s)
    state.period_s = data.capture_period or state.period_s
    return data


async def read_profile_since(session: ProfileSession, obis: str, since_ms: int, now_ms: int, *,
                             state: ProfileReadState, window_ms: int, timeout_s: float,
                             local_offset_min: int | None = None,
                             ranges_from_ms: int | None = None) -> AsyncGenerator[ProfileWindow, None]:
    """What ``obis`` captured since ``since_ms``: window by window by range up to ``now_ms``, or in one
    read by entry (all rows back to ``since_ms``, some older) once the meter refused a range.

    The caller hands each window over before asking for the next, and may stop early (close the
    generator, e.g. ``contextlib.aclosing``). A refusal of the first range read is taken for "no
    range selectors": the same rows are read by entry and ``state.by_entry`` is set; if the read
    by entry is refused too, the range refusal is raised. A refusal after a range read worked is
    about something else and is raised. ``ranges_from_ms``: the caller knows the range reads found
    nothing before this, so they may start there.
    """
    if state.by_entry:
        yield ProfileWindow(await _by_entry(session, obis, state, since_ms, now_ms, window_ms, timeout_s), None)
        return
    start = since_ms if ranges_from_ms is None else max(since_ms, ranges_from_ms)
    first = True
    while True:
        # Not clipped to now: a meter clock running ahead has rows stamped after our now.
        end = start + window_ms
        try:
            data = await asyncio.wait_for(session.read_profile(obis, _utc(start), _utc(end),
                                                               local_offset_min=local_offset_min), timeout_s)
        except AccessError as exc:
            if not first:  # ranges worked before: this refusal is about something else
                raise
            refused = exc
            try:
                data = await _by_entry(session, obis, state, since_ms, now_ms, window_ms, timeout_s)
            except AccessError:
                raise refused from None
            state.by_entry = True
            yield ProfileWindow(data, None, refused)
            return
        first = False
        state.period_s = data.capture_period or None
        yield ProfileWindow(data, end)
        if end >= now_ms:
            return
        start = end


async def read_profile_between(session: ProfileSession, obis: str, start_ms: int, end_ms: int, *,
                               state: ProfileReadState, timeout_s: float,
                               local_offset_min: int | None = None) -> ProfileData:
    """Rows captured in [start, end], by range if the meter allows it, else by entry (``state.by_entry`` learnt)."""
    if not state.by_entry:
        try:
            return await asyncio.wait_for(session.read_profile(obis, _utc(start_ms), _utc(end_ms),
                                                               local_offset_min=local_offset_min), timeout_s)
        except AccessError:
            state.by_entry = True
    data = await read_by_entry_back_to(session, obis, start_ms, ENTRY_CHUNK, timeout_s)
    data.rows = [r for r in data.rows if r.timestamp_ms is not None and start_ms <= r.timestamp_ms <= end_ms]
    return data
