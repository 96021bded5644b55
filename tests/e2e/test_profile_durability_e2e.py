"""Cursors through crashes and clock jumps: simulator -> real gateway (subprocess) -> Mosquitto -> fake ThingsBoard.

  Meter K  four days of 15-minute intervals, backfilled in 12-hour windows (48 rows each) while
           the gateway is killed with SIGKILL twice; every interval must arrive, and a kill may
           re-send at most the one window whose cursor was not yet saved.
  Meter J  its clock jumps a day ahead and is set back: the rows it captures after the
           correction must still arrive although the cursor stood a day ahead. Its 48-hour
           window reaches the rows stamped a day ahead of the gateway's clock.
"""
from __future__ import annotations

import json
import os
import signal
from collections import Counter

import pytest

from e2e_support import stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess, wait_until
from tb_dlms.simulator import MeterSpec, Simulator
from tb_dlms.simulator.objects import CAPTURE_PERIOD

LOAD = "1.0.99.1.0.255"
K, J = "Meter K", "Meter J"
WINDOW_HOURS = 12
WINDOW_ROWS = WINDOW_HOURS * 3600 // CAPTURE_PERIOD
DAY_MS = 86_400_000


def _connector_config(sim: Simulator) -> dict:
    def device(name, **profile):
        return {"deviceName": name, "deviceType": "dlms-meter", "pollPeriod": 1,
                "connection": {"host": "127.0.0.1", "port": sim.port_of(name)},
                "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}],
                "profiles": [{"obis": LOAD, "columns": {"1.0.1.8.0.255": "energyImport"},
                              "horizonDays": 7, "readEvery": 1, **profile}]}

    return {"name": "DLMS Connector", "id": "e2e-durability", "logLevel": "DEBUG",
            "defaults": {"timeoutMs": 1000, "retries": 1, "connectTimeoutMs": 1000},
            "devices": [device(K, windowHours=WINDOW_HOURS), device(J, windowHours=48)]}


@pytest.fixture(scope="module")
def simulator():
    sim = Simulator([MeterSpec(K, profile_days=4), MeterSpec(J, profile_days=1)]).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, simulator, tmp_path_factory):
    gw = GatewayProcess(broker.port, connector_config=_connector_config(simulator),
                        workdir=tmp_path_factory.mktemp("gateway-durability"))
    yield gw
    if gw.running:
        stop_gateway(gw)


def expected(sim, name) -> set[int]:
    meter = sim.meter(name)
    last = int(meter.now() // CAPTURE_PERIOD * CAPTURE_PERIOD)
    return {t * 1000 for t in range(int(meter.profile_first), last + 1, CAPTURE_PERIOD)}


def interval_stamps(fake_tb, name) -> list[int]:
    return [p.ts for p in fake_tb.telemetry_of(name) if "energyImport" in p.values]


def saved_cursor(gateway, name) -> int | None:
    for path in (gateway.data_dir / "tb_dlms").glob("*.cursors.json"):
        try:
            return json.loads(path.read_text())["meters"][name][LOAD]["ts"]
        except (OSError, ValueError, KeyError):
            continue
    return None


def kill_hard(gateway) -> None:
    os.killpg(gateway.pid, signal.SIGKILL)
    gateway.wait_exit(10)


def test_kill_9_mid_backfill_resends_at_most_one_window(gateway, fake_tb, simulator):
    first = min(expected(simulator, K))
    last = max(expected(simulator, K))
    gateway.start()
    passed = first
    for kill in range(2):
        # Mid-backfill: the cursor file has moved on since the last kill, and the backfill is not done.
        mark = passed + DAY_MS // 2
        wait_until(lambda mark=mark: mark <= (saved_cursor(gateway, K) or 0) < last - DAY_MS // 2, 60,
                   f"the cursor of {K} saved mid-backfill, past {mark} (kill {kill + 1})")
        passed = saved_cursor(gateway, K)
        kill_hard(gateway)
        gateway.start()

    want = expected(simulator, K)
    fake_tb.wait_for(lambda: want <= set(interval_stamps(fake_tb, K)), 90, f"every interval of {K}")
    counts = Counter(interval_stamps(fake_tb, K))
    resent = sum(n - 1 for n in counts.values())
    # Each kill may re-send the one window handed over but not yet saved: at most WINDOW_ROWS.
    assert resent <= 2 * WINDOW_ROWS, f"{resent} rows re-sent after 2 kills (bound {2 * WINDOW_ROWS})"
    assert not set(counts) - want - {max(want) + CAPTURE_PERIOD * 1000}, "rows the meter does not hold"
    print(f"{len(want)} intervals, {resent} re-sent after 2 kills (bound {2 * WINDOW_ROWS})")


def held(sim, name) -> set[int]:
    """The intervals the meter holds now: a clock jump leaves the skipped ones out."""
    gaps = sim.meter(name).skipped
    return {t for t in expected(sim, name) if not any(lo < t / 1000 < hi for lo, hi in gaps)}


def test_rows_after_a_clock_set_back_are_not_taken_for_delivered(gateway, fake_tb, simulator):
    gateway.start()  # no-op when the test above left it running
    before = expected(simulator, J)
    fake_tb.wait_for(lambda: before <= set(interval_stamps(fake_tb, J)), 60, f"every interval of {J}")
    simulator.jump_clock(J, 86400)
    simulator.advance_clock(J, 2 * CAPTURE_PERIOD)  # it captures two intervals a day ahead
    ahead = int(simulator.meter(J).now() // CAPTURE_PERIOD * CAPTURE_PERIOD) * 1000
    # The connector delivers the interval stamped a day ahead: its cursor now stands there.
    wait_until(lambda: (saved_cursor(gateway, J) or 0) >= ahead, 30, f"the cursor of {J} a day ahead")
    simulator.jump_clock(J, -86400)  # the clock is corrected...
    simulator.advance_clock(J, 3 * CAPTURE_PERIOD)  # ...and the meter captures on from its own time
    after = {t for t in held(simulator, J) if max(before) < t < ahead}
    assert len(after) >= 2, after
    fake_tb.wait_for(lambda: after <= set(interval_stamps(fake_tb, J)), 30,
                     f"the {len(after)} intervals {J} captured after its clock was set back")
    assert "ahead of the meter's clock" in gateway.log_text()
    counts = Counter(interval_stamps(fake_tb, J))
    assert all(counts[t] == 1 for t in after), "an interval captured after the correction sent twice"
