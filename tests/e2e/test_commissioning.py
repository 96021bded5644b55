"""Commissioning from ThingsBoard and the move from per-meter tokens, through the real gateway.

The connector file is made by the migration tool from an old bridge's meter list (name, host,
port, token): the meters keep their ThingsBoard names and no token reaches the gateway. Then
``dlms_probe`` and ``dlms_discover`` (connector RPCs on the gateway device) reach a meter that
is not configured, one that is (over its own session, no second association), a wrong password
and a closed port.
"""
from __future__ import annotations

import json

import pytest

from e2e_support import stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess
from tb_dlms.devtools.mosquitto import free_port
from tb_dlms.simulator import MeterSpec, Simulator
from tb_dlms.tools import migrate

PASSWORD = "12345678"
POLLED = ["Flat 1 meter", "Flat 2 meter"]
NEW = "Meter not yet configured"
TOKENS = {"Flat 1 meter": "bridge-token-aaaa", "Flat 2 meter": "bridge-token-bbbb"}


@pytest.fixture(scope="module")
def simulator():
    sim = Simulator([MeterSpec(name) for name in POLLED]
                    + [MeterSpec(NEW, auth="low", client_address=32, password=PASSWORD)]).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def connector_file(simulator, tmp_path_factory):
    """Phase 1 of a plan: both flats move; the tool writes the gateway's connector file."""
    here = tmp_path_factory.mktemp("migration")
    plan = here / "bridge.csv"
    plan.write_text("name,host,port,token,phase\n" + "".join(
        f"{name},127.0.0.1,{simulator.port_of(name)},{TOKENS[name]},1\n" for name in POLLED))
    out = here / "dlms_connector.json"
    assert migrate.main([str(plan), "--phase", "1", "--out", str(out), "--poll-period", "2",
                         "--timeout-ms", "2000", "--retries", "1"]) == 0
    data = json.loads(out.read_text())
    data["logLevel"] = "DEBUG"
    return data


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, connector_file, tmp_path_factory):
    gw = GatewayProcess(broker.port, connector_config=connector_file,
                        workdir=tmp_path_factory.mktemp("gateway")).start()
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="module")
def polling(gateway, fake_tb):
    for name in POLLED:
        fake_tb.wait_telemetry(name, ["voltageL1", "energyImport"], timeout=45)
    return True


def probe(fake_tb, method, params):
    reply = fake_tb.connector_rpc(method, params, timeout=30)
    assert isinstance(reply, dict), reply
    return reply


def test_migrated_meters_report_under_their_thingsboard_names_and_no_token_leaves(polling, fake_tb, gateway):
    for name in POLLED:
        assert fake_tb.wait_connect(name, 10)["device"] == name
    seen = json.dumps([m.payload for m in fake_tb.messages], default=str)
    assert not any(token in seen for token in TOKENS.values())
    assert not any(token in gateway.log_text() for token in TOKENS.values())


def test_probe_of_a_meter_not_configured(polling, fake_tb, simulator):
    before = simulator.meter(NEW).associations
    reply = probe(fake_tb, "dlms_probe", {
        "connection": {"host": "127.0.0.1", "port": simulator.port_of(NEW), "interface": "wrapper",
                       "clientAddress": 32, "authentication": "low", "password": PASSWORD},
        "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}]})
    assert reply["status"] == "ok", reply
    assert reply["polledAs"] is None
    (reading,) = reply["readings"]
    assert reading["key"] == "voltageL1" and 180 < reading["value"] < 260 and reading["unit"] == "V"
    assert simulator.meter(NEW).associations == before + 1
    assert PASSWORD not in json.dumps(reply)


def test_probe_of_a_polled_meter_uses_its_session(polling, fake_tb, simulator):
    name = POLLED[0]
    before = simulator.meter(name).associations
    reply = probe(fake_tb, "dlms_probe", {"connection": {"host": "127.0.0.1", "port": simulator.port_of(name)},
                                          "timeseries": [{"key": "frequency", "obis": "1.0.14.7.0.255"}]})
    assert reply["status"] == "ok" and reply["polledAs"] == name, reply
    assert 49 < reply["readings"][0]["value"] < 51
    assert simulator.meter(name).associations == before, "no second association with a polled meter"
    fake_tb.wait_telemetry(name, ["voltageL1"], timeout=15)  # and its polls go on


def test_probe_with_a_wrong_password_is_diagnosed(polling, fake_tb, simulator):
    reply = probe(fake_tb, "dlms_probe", {
        "connection": {"host": "127.0.0.1", "port": simulator.port_of(NEW), "clientAddress": 32,
                       "authentication": "low", "password": "wrong-password"}})
    assert reply["status"] == "failed" and reply["diagnosis"]["kind"] == "rejected", reply
    assert "wrong-password" not in json.dumps(reply)


def test_probe_of_a_closed_port_is_diagnosed_in_time(polling, fake_tb):
    reply = probe(fake_tb, "dlms_probe", {"connection": {"host": "127.0.0.1", "port": free_port()},
                                          "timeoutMs": 5000})
    assert reply["status"] == "failed" and reply["diagnosis"]["kind"] == "refused", reply


@pytest.mark.parametrize("params, expected", [
    ({}, "needs params.connection"),
    ({"connection": {"host": "127.0.0.1", "port": 99999}}, "params.connection.port"),
    ({"connection": {"host": "127.0.0.1", "port": 4059}, "timeoutMs": 10}, "params.timeoutMs"),
])
def test_bad_probe_parameters_are_answered_at_once(polling, fake_tb, params, expected):
    reply = probe(fake_tb, "dlms_probe", params)
    assert expected in reply.get("error", ""), reply


def test_discover_a_meter_not_configured(polling, fake_tb, simulator):
    reply = probe(fake_tb, "dlms_discover", {
        "deviceName": "Shop meter",
        "connection": {"host": "127.0.0.1", "port": simulator.port_of(NEW), "clientAddress": 32,
                       "authentication": "low", "password": PASSWORD}})
    entry = reply["device"]
    assert entry["deviceName"] == "Shop meter" and reply["polledAs"] is None, reply
    assert {"key": "voltageL1", "obis": "1.0.32.7.0.255"} in entry["timeseries"]
    assert entry["connection"]["password"].startswith("<redacted")
    assert PASSWORD not in json.dumps(reply)


def test_discover_a_polled_meter_queues_on_its_session(polling, fake_tb, simulator):
    name = POLLED[1]
    before = simulator.meter(name).associations
    reply = probe(fake_tb, "dlms_discover", {"connection": {"host": "127.0.0.1", "port": simulator.port_of(name)}})
    assert reply["polledAs"] == name and reply["timeseries"] > 5, reply
    assert simulator.meter(name).associations == before
