"""Device activity follows the meter: a meter that stops answering becomes inactive at ThingsBoard
(the gateway disconnects it and nothing more is sent for it) and active again when it answers.

The stand-in models ThingsBoard's device state service: a device is active while the gateway keeps
it connected, and otherwise until its inactivity timeout after its last message (shortened here).
"""
from __future__ import annotations

import time

import pytest

from e2e_support import stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess, wait_until
from tb_dlms.devtools.sim_devices import device_for
from tb_dlms.simulator import MeterSpec, Simulator
from tb_dlms.simulator.faults import Fault

FLAKY, STEADY = "Meter Flaky", "Meter Steady"
INACTIVITY_S = 2.0


@pytest.fixture(scope="module")
def simulator():
    sim = Simulator([MeterSpec(FLAKY), MeterSpec(STEADY)]).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, simulator, tmp_path_factory):
    fake_tb.inactivity_timeout_s = INACTIVITY_S

    def device(name):
        return device_for(simulator, name, [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}], device_type=None)

    config = {"name": "DLMS Connector", "id": "e2e-activity", "logLevel": "DEBUG", "pollPeriod": 1,
              "defaults": {"timeoutMs": 500, "retries": 0, "connectTimeoutMs": 1000},
              "breaker": {"failureThreshold": 2, "cooldownS": 2, "maxCooldownS": 2},
              "devices": [device(FLAKY), device(STEADY)]}
    gw = GatewayProcess(broker.port, connector_config=config, workdir=tmp_path_factory.mktemp("gateway")).start()
    yield gw
    stop_gateway(gw)


def test_a_meter_that_stops_answering_becomes_inactive_and_active_again(gateway, fake_tb, simulator):
    for name in (FLAKY, STEADY):
        fake_tb.wait_telemetry(name, ["voltageL1"], timeout=45)
        fake_tb.wait_active(name, True, 10)

    simulator.inject(FLAKY, Fault("blackhole"))
    fake_tb.wait_for(lambda: any(d["device"] == FLAKY for d in fake_tb.disconnects), 30, "disconnect of Flaky")
    with fake_tb._cond:
        last = fake_tb.devices[FLAKY].attributes
        assert last.get("dlmsConnected") is False and last.get("breakerState") == "open", last
    fake_tb.wait_active(FLAKY, False, INACTIVITY_S + 10)
    # While it is dead nothing more is sent for it (each message would be activity again) ...
    quiet_since = time.time()
    wait_until(lambda: time.time() - quiet_since > 3 * INACTIVITY_S, 10, "a few breaker probes")
    with fake_tb._cond:
        assert fake_tb.devices[FLAKY].last_update < quiet_since
    assert not fake_tb.is_active(FLAKY)
    # ... and the other meter stays active.
    assert fake_tb.is_active(STEADY)
    # A device RPC still reaches the disconnected meter's connector (the gateway alone would queue
    # it until its timeout and answer a bare 408): the operator sees why it is quiet.
    stats = fake_tb.device_rpc(FLAKY, "getStats", {}, timeout=20)
    assert stats.get("onPlatform") is False and stats.get("breaker", {}).get("state") in ("open", "half_open"), stats
    assert "code" not in stats, stats

    simulator.clear(FLAKY)
    fake_tb.wait_active(FLAKY, True, 30)
    fake_tb.wait_telemetry(FLAKY, ["voltageL1"], timeout=30, since=time.time())
    with fake_tb._cond:
        state = fake_tb.devices[FLAKY]
        assert state.connected and state.attributes["dlmsConnected"] is True
        assert state.attributes["breakerState"] == "closed"
    stats = fake_tb.connector_rpc("dlms_getStats", {"device": FLAKY}, timeout=20)["meters"][FLAKY]
    assert stats["onPlatform"] is True and stats["platformDisconnects"] >= 1
