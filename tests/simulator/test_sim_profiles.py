"""Load profile and event log: selective access, block transfer, HDLC segmentation."""
from __future__ import annotations

import datetime as dt
from itertools import pairwise

import pytest

from dlms_client import client_for
from dlms_client import AccessError, load_profile

UTC = dt.timezone.utc


def _meter_now(sim, name):
    return dt.datetime.fromtimestamp(sim.meter(name).now(), UTC)


def test_full_profile_needs_block_transfer_and_energy_is_monotonic(sim):
    with client_for(sim, "w-none", pdu=256) as c:
        c.connect()
        pg = load_profile()
        c.read(pg, 3)
        before = sim.stats("w-none")["requests"]
        rows = c.read(pg, 2)
        blocks = sim.stats("w-none")["requests"] - before
        assert blocks >= 3
        assert len(rows) >= 3 * 96
        imports = [r[1] for r in rows]
        assert imports == sorted(imports)
        stamps = [r[0].value for r in rows]
        assert all((b - a).total_seconds() == 900 for a, b in pairwise(stamps))
        c.release()


@pytest.mark.parametrize("name", ["w-none", "h-none"])
def test_profile_by_range(sim, name):
    with client_for(sim, name, pdu=256) as c:
        c.connect()
        pg = load_profile()
        c.read(pg, 3)
        end = _meter_now(sim, name).replace(minute=0, second=0, microsecond=0)
        start = end - dt.timedelta(hours=12)
        before = sim.stats(name)["requests"]
        rows = c.rows_by_range(pg, start, end)
        assert len(rows) == 12 * 4 + 1
        assert rows[0][0].value == start
        assert rows[-1][0].value == end
        assert sim.stats(name)["requests"] - before >= 2  # block transfer (and HDLC segments)
        c.release()


def test_profile_by_entry(sim):
    with client_for(sim, "w-none", pdu=256) as c:
        c.connect()
        pg = load_profile()
        c.read(pg, 3)
        rows = c.rows_by_entry(pg, 1, 40)
        assert len(rows) == 40
        assert rows[0][1] <= rows[-1][1]
        entries = c.read(pg, 7)
        assert entries >= 3 * 96
        c.release()


def test_range_rejected_when_configured(sim):
    with client_for(sim, "norange") as c:
        c.connect()
        pg = load_profile()
        c.read(pg, 3)
        end = _meter_now(sim, "norange")
        with pytest.raises(AccessError) as err:
            c.rows_by_range(pg, end - dt.timedelta(hours=1), end)
        assert err.value.code == 250
        assert len(c.rows_by_entry(pg, 1, 2)) == 2
        c.release()


def test_clock_advance_adds_profile_rows(sim):
    with client_for(sim, "faulty") as c:
        c.connect()
        pg = load_profile()
        n0 = c.read(pg, 7)
        sim.advance_clock("faulty", 3600)
        assert c.read(pg, 7) == n0 + 4
        c.release()
    sim.advance_clock("faulty", -3600)


def test_event_log(sim):
    with client_for(sim, "w-none") as c:
        c.connect()
        log = load_profile("0.0.99.98.0.255")
        c.read(log, 3)
        rows = c.read(log, 2)
        codes = [r[1] for r in rows]
        assert {1, 2, 4, 5} <= set(codes)
        c.release()
