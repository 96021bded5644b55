"""Load profile and event log reads against simulated meters: by range, by entry, blocks, rejections."""
from __future__ import annotations

import asyncio
import datetime as dt
from itertools import pairwise

import pytest

from tb_dlms.protocol.errors import AccessError
from tb_dlms.protocol.session import MeterSession
from tb_dlms.protocol.settings import Interface, MeterSettings
from tb_dlms.simulator.simulator import Simulator
from tb_dlms.simulator.spec import MeterSpec

LOAD = "1.0.99.1.0.255"
EVENTS = "0.0.99.98.0.255"
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def sim():
    specs = [
        MeterSpec(name="w", interface="wrapper", profile_days=3),
        MeterSpec(name="h", interface="hdlc", profile_days=3),
        MeterSpec(name="norange", interface="wrapper", reject_range=True),
    ]
    with Simulator(specs) as s:
        yield s


def _settings(sim, name, **kw):
    spec = sim.meter(name).spec
    return MeterSettings("127.0.0.1", sim.port_of(name), Interface(spec.interface), name=name, timeout=3, **kw)


def run(coro):
    return asyncio.run(coro)


async def _with_session(settings, fn):
    session = MeterSession(settings)
    try:
        return await fn(session)
    finally:
        await session.close()


@pytest.mark.parametrize("meter", ["w", "h"])
def test_range_read_returns_rows_on_the_15_minute_grid(sim, meter):
    end = dt.datetime.now(UTC)
    start = end - dt.timedelta(hours=6)
    async def go(s):
        got = await s.read_profile(LOAD, start, end)
        return got, s.unit_of(got.columns[1].ref)

    data, unit = run(_with_session(_settings(sim, meter, max_pdu_size=256), go))
    assert unit == "Wh"  # scaler and unit of the captured register were read with the layout
    assert data.capture_period == 900
    assert [c.ref.obis.reduced for c in data.columns][:3] == ["0-0:1.0.0*255", "1-0:1.8.0*255", "1-0:2.8.0*255"]
    stamps = [r.timestamp_ms for r in data.rows]
    assert 23 <= len(stamps) <= 25
    assert all(b - a == 900_000 for a, b in pairwise(stamps))
    assert all(start.timestamp() * 1000 <= t <= end.timestamp() * 1000 for t in stamps)
    assert all(t % 900_000 == 0 for t in stamps)
    energies = [r.values[1] for r in data.rows]
    assert energies == sorted(energies) and energies[0] < energies[-1]


def test_range_in_meter_local_time_without_deviation(sim):
    end = dt.datetime.now(UTC)
    start = end - dt.timedelta(hours=2)
    data = run(_with_session(_settings(sim, "w"),
                             lambda s: s.read_profile(LOAD, start, end, local_offset_min=60)))
    assert 7 <= len(data.rows) <= 9
    assert all(start.timestamp() * 1000 <= r.timestamp_ms <= end.timestamp() * 1000 for r in data.rows)


def test_whole_profile_by_entry_and_block_transfer(sim):
    async def go(s):
        n = await s.profile_entries(LOAD)
        rt = s.stats.round_trips
        rows = (await s.read_profile(LOAD, entries=(1, n))).rows
        return n, rows, s.stats.round_trips - rt

    n, rows, rts = run(_with_session(_settings(sim, "w", max_pdu_size=256), go))
    assert n >= 3 * 96 and len(rows) == n
    assert rts > 5  # many blocks


def test_meter_rejecting_range_says_so(sim):
    end = dt.datetime.now(UTC)

    async def go(s):
        with pytest.raises(AccessError):
            await s.read_profile(LOAD, end - dt.timedelta(hours=1), end)
        n = await s.profile_entries(LOAD)
        return (await s.read_profile(LOAD, entries=(n - 3, n))).rows

    rows = run(_with_session(_settings(sim, "norange"), go))
    assert len(rows) == 4


def test_event_log(sim):
    data = run(_with_session(_settings(sim, "w"), lambda s: s.read_profile(EVENTS)))
    assert data.rows
    codes = {r.values[1] for r in data.rows}
    assert {1, 2} <= codes  # power down / power up
    assert all(r.timestamp_ms for r in data.rows)
