"""The profile read strategy on its own: range windows, the fall back to entries, backwards chunks.

The gateway tests run it against the simulator through the connector; these pin the decisions
(which refusal means "no range selectors", which is raised) with a scripted session.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from contextlib import aclosing

import pytest

from tb_dlms.protocol.errors import AccessError
from tb_dlms.protocol.obis import ObisCode
from tb_dlms.protocol.profile import CaptureObject, ProfileData, ProfileRow
from tb_dlms.protocol.profile_reads import (
    ENTRY_CHUNK, ProfileReadState, ProfileSession, read_by_entry_back_to, read_profile_between, read_profile_since)
from tb_dlms.protocol.readings import AttributeRef

LOAD = "1.0.99.1.0.255"
COLUMNS = [CaptureObject(AttributeRef.of("0.0.1.0.0.255", 8, 2)), CaptureObject(AttributeRef.of("1.0.1.8.0.255"))]
HOUR = 3_600_000


class ScriptedProfile:
    """A meter buffer of one row per hour; refuses ranges (always, or after some) if told to."""

    def __init__(self, stamps: list[int], refuse_ranges_after: int | None = None, refuse_entries: bool = False):
        self.stamps = stamps
        self.refuse_ranges_after = refuse_ranges_after
        self.refuse_entries = refuse_entries
        self.ranges: list[tuple[int, int]] = []
        self.entries: list[tuple[int, int]] = []

    def _data(self, stamps: list[int]) -> ProfileData:
        return ProfileData(ObisCode.parse(LOAD), COLUMNS, [ProfileRow(ts, (None, ts)) for ts in stamps], 3600)

    async def read_profile(self, obis, start=None, end=None, *, entries=None, local_offset_min=None) -> ProfileData:
        if entries is not None:
            if self.refuse_entries:
                raise AccessError("entry selector refused")
            self.entries.append(entries)
            return self._data(self.stamps[entries[0] - 1:entries[1]])
        if self.refuse_ranges_after is not None and len(self.ranges) >= self.refuse_ranges_after:
            raise AccessError("range selector refused")
        assert start is not None and end is not None
        lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        self.ranges.append((lo, hi))
        return self._data([ts for ts in self.stamps if lo <= ts <= hi])

    async def profile_entries(self, obis) -> int:
        return len(self.stamps)


def _is_a_profile_session(meter: ScriptedProfile) -> ProfileSession:
    return meter  # mypy: the script implements what the reads need


async def _windows(meter: ScriptedProfile, state: ProfileReadState, since: int, now: int, window: int = 6 * HOUR):
    out = []
    async with aclosing(read_profile_since(meter, LOAD, since, now, state=state, window_ms=window,
                                           timeout_s=5)) as windows:
        async for w in windows:
            out.append(w)
    return out


NOW = int(dt.datetime(2024, 3, 31, tzinfo=dt.timezone.utc).timestamp() * 1000)
STAMPS = [NOW - h * HOUR for h in range(48, -1, -1)]


def test_ranges_window_by_window_up_to_now():
    meter, state = ScriptedProfile(STAMPS), ProfileReadState()
    windows = asyncio.run(_windows(meter, state, NOW - 24 * HOUR, NOW))
    assert [w.end_ms for w in windows] == [NOW - 18 * HOUR, NOW - 12 * HOUR, NOW - 6 * HOUR, NOW]
    assert not state.by_entry and state.period_s == 3600 and meter.entries == []


def test_a_refused_first_range_reads_the_same_rows_by_entry_backwards_and_is_remembered():
    meter, state = ScriptedProfile(STAMPS, refuse_ranges_after=0), ProfileReadState()
    [window] = asyncio.run(_windows(meter, state, NOW - 30 * HOUR, NOW))
    assert window.by_entry and isinstance(window.range_refused, AccessError) and state.by_entry
    assert min(r.timestamp_ms for r in window.data.rows) <= NOW - 30 * HOUR  # back to the point asked for
    assert ENTRY_CHUNK >= 49 and meter.entries[0] == (1, 49)  # period unknown: one chunk of ENTRY_CHUNK
    again = asyncio.run(_windows(meter, state, NOW - 2 * HOUR, NOW))
    assert again[0].by_entry and again[0].range_refused is None and len(meter.ranges) == 0
    # The capture period is known now: a chunk just big enough to reach back 2 hours (+2).
    assert meter.entries[-1] == (49 - 4 + 1, 49)


def test_a_refusal_after_ranges_worked_is_raised_not_taken_for_no_ranges():
    meter, state = ScriptedProfile(STAMPS, refuse_ranges_after=1), ProfileReadState()
    with pytest.raises(AccessError, match="range selector refused"):
        asyncio.run(_windows(meter, state, NOW - 24 * HOUR, NOW))
    assert not state.by_entry and meter.entries == []


def test_entries_refused_too_raises_the_range_refusal():
    meter, state = ScriptedProfile(STAMPS, refuse_ranges_after=0, refuse_entries=True), ProfileReadState()
    with pytest.raises(AccessError, match="range selector refused"):
        asyncio.run(_windows(meter, state, NOW - 24 * HOUR, NOW))
    assert not state.by_entry


def test_backwards_chunks_stop_at_the_floor_and_at_entry_one():
    meter = ScriptedProfile(STAMPS)
    data = asyncio.run(read_by_entry_back_to(meter, LOAD, NOW - 10 * HOUR, 4, 5))
    assert meter.entries == [(46, 49), (42, 45), (38, 41)] and data.rows[0].timestamp_ms == NOW - 11 * HOUR
    meter = ScriptedProfile(STAMPS[:5])
    data = asyncio.run(read_by_entry_back_to(meter, LOAD, 0, 2, 5))
    assert meter.entries == [(4, 5), (2, 3), (1, 1)] and len(data.rows) == 5


def test_between_by_entry_keeps_only_the_rows_asked_for():
    meter, state = ScriptedProfile(STAMPS, refuse_ranges_after=0), ProfileReadState()
    data = asyncio.run(read_profile_between(meter, LOAD, NOW - 5 * HOUR, NOW - 2 * HOUR, state=state, timeout_s=5))
    assert [r.timestamp_ms for r in data.rows] == [NOW - h * HOUR for h in (5, 4, 3, 2)] and state.by_entry
