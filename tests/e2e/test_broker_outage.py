"""No reading lost or doubled while the broker is away (gateway file storage, its shipped default).

Real Mosquitto, the real gateway as a subprocess, the fake ThingsBoard client and simulated
meters polled every 2 s. The broker is stopped for 20 s mid-polling and started again on the same
port; afterwards every meter's telemetry timestamps must lie on its poll grid without a gap
across the outage, each with the time it was read, not the time sent, and every reading taken
while the broker was away must arrive exactly once.

One duplicate is legitimate and is checked for what it is: the gateway core publishes with QoS 1
and re-sends a pack whose PUBACK was lost when the broker died or while it reconnected
(at-least-once). Such a copy is identical (same timestamp, same values), and ThingsBoard keys
telemetry by timestamp, so it stores one row: "once" is what ThingsBoard holds. A second reading
with the same timestamp and different values, more than two copies, or more re-sent readings
than the outage produced fails the test.
"""
from __future__ import annotations

import collections
import time
from itertools import pairwise

import pytest

from e2e_support import stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess
from tb_dlms.simulator import MeterSpec, Simulator

POLL_PERIOD_S = 2
OUTAGE_S = 20
METERS = ("Outage W", "Outage H")
TIMESERIES = {"voltageL1": "1.0.32.7.0.255", "energyImport": "1.0.1.8.0.255"}


@pytest.fixture(scope="module")
def simulator():
    sim = Simulator([MeterSpec("Outage W"), MeterSpec("Outage H", interface="hdlc")]).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, simulator, tmp_path_factory):
    def device(name, interface):
        return {"deviceName": name, "deviceType": "dlms-meter",
                "connection": {"host": "127.0.0.1", "port": simulator.port_of(name), "interface": interface},
                "timeseries": [{"key": k, "obis": o} for k, o in TIMESERIES.items()]}

    config = {"name": "DLMS Connector", "id": "e2e-outage", "logLevel": "INFO", "pollPeriod": POLL_PERIOD_S,
              "defaults": {"timeoutMs": 1000, "retries": 1, "connectTimeoutMs": 1000},
              "devices": [device("Outage W", "wrapper"), device("Outage H", "hdlc")]}
    gw = GatewayProcess(broker.port, connector_config=config, workdir=tmp_path_factory.mktemp("gw-outage"))
    assert gw.main_config["storage"]["type"] == "file"
    gw.start()
    yield gw
    stop_gateway(gw)


def _gaps(stamps: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in pairwise(stamps) if b - a > POLL_PERIOD_S * 1000 * 1.5]


def test_readings_taken_during_a_broker_outage_arrive_once_with_their_timestamps(broker, fake_tb, gateway):
    for name in METERS:
        fake_tb.wait_telemetry(name, TIMESERIES, timeout=45)
    stopped_at = time.time()
    broker.stop()
    down_at = time.time()  # the broker is gone: it may have forwarded messages until just now
    time.sleep(OUTAGE_S)  # the outage itself: polling goes on meanwhile
    broker.start()
    restarted_at = time.time()
    gateway.assert_running()

    def caught_up() -> bool:
        for name in METERS:
            stamps = sorted(p.ts for p in fake_tb.telemetry_of(name))
            window = [t for t in stamps if t >= (stopped_at - 4) * 1000]
            if not window or window[-1] < (restarted_at + 3 * POLL_PERIOD_S) * 1000 or _gaps(window):
                return False
        return True

    fake_tb.wait_for(caught_up, 90, "telemetry across the outage without gaps")
    for name in METERS:
        points = fake_tb.telemetry_of(name)
        counts = collections.Counter(p.ts for p in points)
        # At-least-once re-sends of a pack whose PUBACK was lost around the outage: identical
        # copies, at most one outage's worth of readings, not a replay of the storage.
        resent = sorted(t for t, n in counts.items() if n > 1)
        assert len(resent) <= OUTAGE_S // POLL_PERIOD_S, (name, resent)
        for ts in resent:
            copies = [p for p in points if p.ts == ts]
            assert len(copies) == 2 and copies[0].values == copies[1].values, (name, copies)
        window = sorted(t for t in counts if (stopped_at - 4) * 1000 <= t <= restarted_at * 1000)
        # About one reading per period of the outage, each stamped when read (not when sent).
        assert len(window) >= OUTAGE_S // POLL_PERIOD_S, (name, window)
        during = [p for p in points if down_at * 1000 < p.ts < restarted_at * 1000]
        assert during and all(p.received >= restarted_at for p in during), name
        assert _gaps(window) == [], name
