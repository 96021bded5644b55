"""Hostile meters and RPCs through the real gateway, Mosquitto and the fake ThingsBoard (issue 11, items 12-15).

Meters (one simulator, one gateway for the module):
  Meter OK    healthy, WRAPPER, no authentication: must keep reporting next to the others
  Meter Big   answers its one mapped value with a legal 4 MB octet string (block transfer)
  Meter Junk  answers its one mapped value with an array claiming 2^31 elements, one present
"""
from __future__ import annotations

import time

import pytest

from e2e_support import device_stats, stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess
from tb_dlms.devtools.sim_devices import device_for
from tb_dlms.simulator import MeterSpec, Simulator
from tb_dlms.simulator.faults import Fault

POLL_PERIOD_S = 2
FIRMWARE = "1.0.0.2.0.255"
HEALTHY_KEYS = {"voltageL1": "1.0.32.7.0.255", "frequency": "1.0.14.7.0.255"}
HOSTILE = {"Meter Big": "blob", "Meter Junk": "tags"}


def _connector_config(sim: Simulator) -> dict:
    def device(name, timeseries):
        return device_for(sim, name, timeseries, device_type="dlms-meter")

    return {
        "name": "DLMS Connector", "id": "e2e-hostile", "logLevel": "DEBUG", "pollPeriod": POLL_PERIOD_S,
        "defaults": {"timeoutMs": 2000, "retries": 1, "connectTimeoutMs": 2000},
        "breaker": {"failureThreshold": 1000},
        "devices": [device("Meter OK", [{"key": k, "obis": o} for k, o in HEALTHY_KEYS.items()])]
        + [device(name, [{"key": key, "obis": FIRMWARE, "classId": 1}]) for name, key in HOSTILE.items()],
    }


@pytest.fixture(scope="module")
def simulator():
    sim = Simulator([MeterSpec("Meter OK"), MeterSpec("Meter Big"), MeterSpec("Meter Junk")]).start()
    sim.inject("Meter Big", Fault("huge_value", obis=FIRMWARE, size=4_000_000))
    sim.inject("Meter Junk", Fault("malformed_value", obis=FIRMWARE, shape="huge_array"))
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, simulator, tmp_path_factory):
    gw = GatewayProcess(broker.port, connector_config=_connector_config(simulator),
                        workdir=tmp_path_factory.mktemp("gateway")).start()
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="module")
def reporting(gateway, fake_tb):
    try:
        fake_tb.wait_telemetry("Meter OK", HEALTHY_KEYS, timeout=45)
    except TimeoutError:
        gateway.assert_running()
        raise
    return True


def _wait_failed(fake_tb, device: str, needle: str) -> dict:
    deadline = time.monotonic() + 45
    while True:
        stats = device_stats(fake_tb, device)
        if stats["lastError"] and needle in stats["lastError"]:
            return stats
        assert time.monotonic() < deadline, f"{device}: lastError never named {needle!r}: {stats}"
        fake_tb.wait_telemetry("Meter OK", HEALTHY_KEYS, timeout=POLL_PERIOD_S * 3 + 15, since=time.time())


def test_huge_value_refused_while_the_healthy_meter_keeps_reporting(reporting, fake_tb):
    stats = _wait_failed(fake_tb, "Meter Big", "maxReplyBytes")
    assert "Meter Big" in stats["lastError"] and "blob" in stats["lastError"], stats["lastError"]
    assert stats["errors"].get("reply_too_large", 0) >= 1, stats
    # Stopped at the limit: a 4 MB value costs about 64 KiB per poll, not 4 MB.
    polls = stats["pollsOk"] + stats["pollsFailed"]
    assert stats["bytesReceived"] < polls * 2 * 65536, stats
    since = time.time()
    for _ in range(2):
        fake_tb.wait_telemetry("Meter OK", HEALTHY_KEYS, timeout=POLL_PERIOD_S * 3 + 15, since=since)
        since = time.time()
    assert not [p for p in fake_tb.telemetry_of("Meter Big") if "blob" in p.values]


def test_malformed_value_is_an_error_not_a_value(reporting, fake_tb):
    stats = _wait_failed(fake_tb, "Meter Junk", "does not decode")
    assert "tags" in stats["lastError"] and "2147483648" in stats["lastError"], stats["lastError"]
    assert stats["errors"].get("malformed", 0) >= 1, stats
    assert not [p for p in fake_tb.telemetry_of("Meter Junk") if "tags" in p.values]


@pytest.mark.parametrize("value,type_name", [(5, "octet_string"), ([1, 2], "string"), ("word", "datetime")])
def test_set_with_a_value_of_the_wrong_type_leaves_the_session_alone(reporting, fake_tb, simulator, value,
                                                                     type_name):
    before = simulator.stats("Meter OK")["associations"]
    errors_before = device_stats(fake_tb, "Meter OK")["errors"]
    reply = fake_tb.device_rpc("Meter OK", "set", {"obis": "0.0.1.0.0.255", "classId": 8, "attribute": 2,
                                                   "value": value, "type": type_name}, timeout=20)
    assert isinstance(reply, dict) and "params.value" in reply.get("error", ""), reply
    assert type_name in reply["error"], reply
    # The next poll reuses the association: no new AARQ reached the meter, no error was counted.
    fake_tb.wait_telemetry("Meter OK", HEALTHY_KEYS, timeout=POLL_PERIOD_S * 3 + 15, since=time.time())
    assert simulator.stats("Meter OK")["associations"] == before
    assert device_stats(fake_tb, "Meter OK")["errors"] == errors_before


@pytest.mark.parametrize("method", ["", None])
def test_rpc_with_an_empty_or_null_method_gets_an_error_reply(reporting, fake_tb, method):
    reply = fake_tb.device_rpc("Meter OK", method, {}, timeout=20)
    assert isinstance(reply, dict) and "has no method" in reply.get("error", ""), reply


def test_gateway_log_has_no_tracebacks(reporting, gateway):
    text = gateway.log_text()
    assert "Traceback (most recent call last)" not in text, text[-4000:]
