"""A value within maxReplyBytes but larger than ThingsBoard takes in one message (issue 11, item 12).

ThingsBoard announces maxPayloadSize in its session limits (here 8 KB, as a small install might);
the gateway cannot split one value. A meter answers one mapped register with a 20 KB octet string
(40 KB of hex in JSON): the connector drops that value, names meter and key in lastError and its
log, counts it, and the meter's other readings and the other meters keep reporting.
"""
from __future__ import annotations

import json

import pytest

from e2e_support import stop_gateway
from tb_dlms.devtools.fake_thingsboard import DEFAULT_SESSION_LIMITS, FakeThingsBoard
from tb_dlms.devtools.gateway_process import GatewayProcess
from tb_dlms.simulator import MeterSpec, Simulator
from tb_dlms.simulator.faults import Fault

FIRMWARE = "1.0.0.2.0.255"
VOLTAGE = "1.0.32.7.0.255"
MAX_PAYLOAD = 8192


@pytest.fixture(scope="module")
def small_tb(broker):
    tb = FakeThingsBoard(port=broker.port, session_limits={**DEFAULT_SESSION_LIMITS,
                                                           "maxPayloadSize": MAX_PAYLOAD}).start()
    yield tb
    tb.stop()


@pytest.fixture(scope="module")
def simulator():
    sim = Simulator([MeterSpec("Meter Wide"), MeterSpec("Meter Plain")]).start()
    sim.inject("Meter Wide", Fault("huge_value", obis=FIRMWARE, size=20_000))
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def gateway(broker, small_tb, simulator, tmp_path_factory):
    def device(name):
        # The wide value as its own read (an attribute): one GET, whose reply comes in data blocks.
        return {"deviceName": name, "connection": {"host": "127.0.0.1", "port": simulator.port_of(name)},
                "timeseries": [{"key": "voltageL1", "obis": VOLTAGE}],
                "attributes": [{"key": "blob", "obis": FIRMWARE, "classId": 1}]}

    config = {"name": "DLMS Connector", "id": "e2e-payload", "logLevel": "DEBUG", "pollPeriod": 2,
              "devices": [device("Meter Wide"), device("Meter Plain")]}
    gw = GatewayProcess(broker.port, connector_config=config, workdir=tmp_path_factory.mktemp("gateway")).start()
    yield gw
    stop_gateway(gw)


def test_a_value_larger_than_thingsboard_takes_is_dropped_and_named(gateway, small_tb):
    small_tb.wait_telemetry("Meter Plain", ["voltageL1"], timeout=45)
    small_tb.wait_telemetry("Meter Wide", ["voltageL1"], timeout=45)
    small_tb.wait_for(lambda: "blob" in small_tb.devices["Meter Plain"].attributes, 30, "Meter Plain's blob")
    small_tb.wait_for(lambda: "blob" in str(small_tb.devices["Meter Wide"].attributes.get("lastError")), 30,
                      "Meter Wide's lastError naming blob")
    with small_tb._cond:
        error = small_tb.devices["Meter Wide"].attributes["lastError"]
        assert "more than ThingsBoard accepts" in error and "bytes" in error, error
        assert "blob" not in small_tb.devices["Meter Wide"].attributes, "the oversized value never reaches ThingsBoard"
        biggest = max(len(json.dumps(m.payload)) for m in small_tb.messages if m.topic.startswith("v1/gateway/"))
    assert biggest < MAX_PAYLOAD, biggest
    stats = small_tb.device_rpc("Meter Wide", "getStats", {}, timeout=20)
    assert stats["oversizedValues"] >= 1, stats
    assert "Meter Wide: value of blob is" in gateway.log_text()
