"""A short-name meter end to end: simulator (SN, WRAPPER) -> real gateway -> Mosquitto -> fake ThingsBoard.

Polled registers with scalers and overridden units, a load profile backfilled in data blocks,
writes and methods by short name through RPC and attribute updates. OBIS codes in the
configuration, as for LN: the connector finds the short names in the meter's association view.
"""
from __future__ import annotations

import json

import pytest

from e2e_support import stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess
from tb_dlms.simulator import MeterSpec, Simulator
from tb_dlms.simulator.objects import CAPTURE_PERIOD

S = "Meter SN"
LOAD = "1.0.99.1.0.255"
PASSWORD = "12345678"


@pytest.fixture(scope="module")
def simulator():
    # WRAPPER: a reply in data blocks goes through gurux's block path that needs the sn-block workarounds.
    sim = Simulator([MeterSpec(S, auth="low", referencing="sn", profile_days=1)]).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, simulator, tmp_path_factory):
    config = {
        "name": "DLMS Connector", "id": "e2e-sn", "logLevel": "DEBUG",
        "devices": [{
            "deviceName": S, "deviceType": "dlms-meter", "pollPeriod": 1,
            "connection": {"host": "127.0.0.1", "port": simulator.port_of(S),
                           "referencing": "sn", "authentication": "low", "clientAddress": 32,
                           "password": PASSWORD, "timeoutMs": 1000, "retries": 1,
                           # One by unit code (all voltages), one by key.
                           "unitOverrides": {"35": "volt", "frequency": "hertz"}},
            "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"},
                           {"key": "frequency", "obis": "1.0.14.7.0.255"},
                           {"key": "energyImport", "obis": "1.0.1.8.0.255"}],
            "attributes": [{"key": "serialNumber", "obis": "0.0.96.1.0.255", "classId": 1}],
            "profiles": [{"obis": LOAD, "columns": {"1.0.1.8.0.255": "energyImportInterval",
                                                    "1.0.2.8.0.255": "energyExportInterval"},
                          "windowHours": 24, "horizonDays": 7, "readEvery": 2}],
            "attributeUpdates": [{"key": "relay", "obis": "0.0.96.3.10.255", "classId": 70,
                                  "method": {"true": 2, "false": 1}}],
        }],
    }
    gw = GatewayProcess(broker.port, connector_config=config,
                        workdir=tmp_path_factory.mktemp("gateway-sn")).start()
    yield gw
    if gw.running:
        stop_gateway(gw)


def test_sn_meter_polled_with_scalers_and_unit_overrides(gateway, fake_tb, simulator):
    points = fake_tb.wait_telemetry(S, ["voltageL1", "frequency", "energyImport"], timeout=40)
    latest = next(p for p in reversed(points) if "voltageL1" in p.values)
    assert 180 < latest.values["voltageL1"] < 260 and isinstance(latest.values["voltageL1"], float)
    assert 49 < latest.values["frequency"] < 51
    attrs = fake_tb.wait_attributes(S, ["units", "serialNumber"], timeout=30)
    units = json.loads(attrs["units"]) if isinstance(attrs["units"], str) else attrs["units"]
    assert units == {"voltageL1": "volt", "frequency": "hertz", "energyImport": "Wh"}
    assert attrs["serialNumber"] == str(simulator.meter(S).spec.serial_number)


def test_sn_profile_backfilled_once_in_data_blocks(gateway, fake_tb, simulator):
    meter = simulator.meter(S)

    def rows():
        return [p for p in fake_tb.telemetry_of(S) if "energyImportInterval" in p.values]

    def want() -> dict[int, int]:
        last = int(meter.now() // CAPTURE_PERIOD * CAPTURE_PERIOD)
        return {t * 1000: round(meter.load.energy_import(t))
                for t in range(int(meter.profile_first), last + 1, CAPTURE_PERIOD)}

    fake_tb.wait_for(lambda: set(want()) <= {p.ts for p in rows()}, 60, "every interval of the SN meter")
    expected = want()
    stamps = [p.ts for p in rows()]
    assert len(expected) >= 95
    assert len(stamps) == len(set(stamps)), "an interval was sent twice"
    for point in rows():
        if point.ts in expected:
            assert point.values["energyImportInterval"] == expected[point.ts], point


def test_sn_set_get_rpc_and_method_by_attribute_update(gateway, fake_tb, simulator):
    reply = fake_tb.device_rpc(S, "set", {"obis": "0.0.96.3.10.255", "classId": 70, "attribute": 4,
                                          "value": 3, "type": "enum"}, timeout=30)
    assert reply.get("success") is True, reply
    assert simulator.meter(S).control_mode == 3
    reply = fake_tb.device_rpc(S, "get", {"obis": "0.0.96.3.10.255", "classId": 70, "attribute": 4}, timeout=30)
    assert reply.get("value") == 3, reply
    fake_tb.send_attribute_update(S, {"relay": False})
    fake_tb.wait_for(lambda: simulator.meter(S).output_state is False, 20, "relay off by attribute update")
    fake_tb.send_attribute_update(S, {"relay": True})
    fake_tb.wait_for(lambda: simulator.meter(S).output_state is True, 20, "relay on by attribute update")
    reply = fake_tb.device_rpc(S, "set", {"obis": "1.0.32.7.0.255", "value": 1, "type": "uint16"}, timeout=30)
    assert "denied" in reply.get("error", "").lower(), reply


def test_gateway_log_has_no_tracebacks(gateway):
    text = gateway.log_text()
    assert "Traceback (most recent call last)" not in text, text[-4000:]
