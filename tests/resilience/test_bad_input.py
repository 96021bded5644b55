"""Bad input from operators: broken connector files and RPCs that must not hold the gateway's threads."""
from __future__ import annotations

import copy
import time

import pytest
import support  # noqa: F401 - puts tests/gateway on the path
from gateway_fakes import FakeFleet, FakeGateway, MeterScript

from tb_dlms.config.schema import parse_connector_json
from tb_dlms.gateway import rpc_work
from tb_dlms.gateway.connector import CONNECTOR_RPC_TIMEOUT_S, DLMSConnector

KEY = "000102030405060708090a0b0c0d0e0f"


def meter(name: str, port: int = 4059, **conn) -> dict:
    return {"deviceName": name, "pollPeriod": 0.05, "connection": {"host": "127.0.0.1", "port": port, **conn},
            "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}]}


def broken(path: str, value) -> dict:
    dev = meter("Broken", 4061)
    node = dev
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is ...:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return dev


BROKEN_DEVICES = [
    ("missing host", broken("connection.host", ...), "connection.host is required"),
    ("port wrong type", broken("connection.port", "4059"), "connection.port must be an integer"),
    ("bad obis", broken("timeseries.0.obis", "1.0.32.7"), "timeseries[0].obis is not an OBIS code"),
    ("unknown interface", broken("connection.interface", "serial"), "connection.interface must be one of"),
    ("unknown authentication", broken("connection.authentication", "ultra"),
     "connection.authentication must be one of"),
    ("short key", {**meter("Broken", 4061, authentication="high_gmac", security={
        "systemTitle": "4d4d4d0000bc614e", "blockCipherKey": KEY[:30], "authenticationKey": KEY})},
     "connection.security.blockCipherKey must be 16 bytes"),
    ("poll period wrong type", broken("pollPeriod", "often"), "pollPeriod must be a positive number"),
    ("breaker threshold wrong type", {**meter("Broken", 4061), "breaker": {"failureThreshold": "3"}},
     "breaker.failureThreshold must be an integer"),
    ("breaker cap below cooldown", {**meter("Broken", 4061), "breaker": {"cooldownS": 60, "maxCooldownS": 10}},
     "breaker.maxCooldownS must be at least cooldownS"),
    ("stale negative", {**meter("Broken", 4061), "staleAfterS": -1}, "staleAfterS must be a number"),
]


@pytest.mark.parametrize("device,expected", [b[1:] for b in BROKEN_DEVICES], ids=[b[0] for b in BROKEN_DEVICES])
def test_bad_device_is_logged_once_by_name_and_field_and_the_others_run(device, expected, caplog):
    gateway = FakeGateway()
    config = {"name": "DLMS Bad", "devices": [meter("Good 1"), device, meter("Good 2", 4060)]}
    with caplog.at_level("ERROR"):
        connector = DLMSConnector(gateway, config, "dlms", session_factory=FakeFleet())
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    try:
        assert len(errors) == 1, errors
        assert 'devices[1] "Broken"' in errors[0] and expected in errors[0], errors[0]
        assert KEY[:30] not in errors[0]
        assert list(connector.devices) == ["Good 1", "Good 2"]
        connector.open()
        assert gateway.wait_for(lambda: gateway.telemetry("Good 1") and gateway.telemetry("Good 2"))
    finally:
        connector.close()


@pytest.mark.parametrize("config,expected", [
    ({"name": "x", "devices": []}, "devices must list at least one meter"),
    ({"name": "x", "devices": [meter("Same"), meter("Same", 4060)]}, 'devices[1] "Same": deviceName duplicates'),
    ({"name": "x", "breaker": {"cooldownS": "15"}, "devices": [meter("A")]}, "breaker.cooldownS must be"),
    ({"name": "x", "loopStallS": 0, "devices": [meter("A")]}, "loopStallS must be a positive number"),
], ids=["empty device list", "duplicate names", "connector breaker", "loop stall zero"])
def test_connector_level_mistakes_are_logged_and_the_connector_still_runs(config, expected, caplog):
    gateway = FakeGateway()
    with caplog.at_level("ERROR"):
        connector = DLMSConnector(gateway, copy.deepcopy(config), "dlms", session_factory=FakeFleet())
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and expected in errors[0], errors
    connector.open()
    try:
        reply = connector.server_side_rpc_handler({"method": "dlms_getStats", "params": {}, "id": "1"})
        assert "meters" in reply
    finally:
        connector.close()


def test_invalid_json_is_one_error_with_line_and_column():
    cfg, errors = parse_connector_json('{"devices": [\n  {"deviceName": "A",}\n]}')
    assert cfg is None and len(errors) == 1
    assert "not valid JSON at line 2 column 21: Illegal trailing comma" in str(errors[0])


# -- RPCs against a stuck meter ------------------------------------------------------------------


@pytest.fixture
def stuck(monkeypatch):
    """A connector whose 'Stuck' meter never answers nor closes; device RPCs bounded at 1 s."""
    monkeypatch.setattr(rpc_work, "DEVICE_RPC_TIMEOUT_S", 1.0)
    gateway = FakeGateway()
    script = MeterScript(hang=True, hang_close=True)
    fleet = FakeFleet(Stuck=script, Fine=MeterScript())
    config = {"name": "DLMS Stuck", "devices": [{**meter("Stuck"), "pollTimeoutMs": 600_000},
                                                 meter("Fine", 4060)]}
    connector = DLMSConnector(gateway, config, "dlms", session_factory=fleet)
    connector.open()
    assert script.wait_for(lambda: script.reads_started >= 1)
    yield connector, gateway
    connector.close()


@pytest.mark.parametrize("method,params", [("get", {"obis": "1.0.32.7.0.255"}), ("readAttributes", {}),
                                           ("reconnect", {}), ("getStats", {})])
def test_device_rpc_to_a_stuck_meter_returns_within_its_bound(stuck, method, params):
    connector, gateway = stuck
    started = time.monotonic()
    assert connector.server_side_rpc_handler({"device": "Stuck", "data": {"id": 5, "method": method,
                                                                           "params": params}}) is None
    assert time.monotonic() - started < 0.5  # the gateway's RPC thread is handed back at once
    assert gateway.wait_for(lambda: gateway.reply_for(5) is not None, 5)
    assert time.monotonic() - started < 3.0
    reply = gateway.reply_for(5)
    assert isinstance(reply, dict) and ("error" in reply or method in ("getStats", "reconnect")), reply


@pytest.mark.parametrize("content", [
    {"method": "dlms_getStats", "params": {}},
    {"method": "dlms_reconnect", "params": {"device": "Stuck"}},
    {"method": "dlms_reconnect", "params": {"all": True}},
])
def test_connector_rpc_with_a_stuck_meter_returns_within_its_bound(stuck, content):
    connector, _ = stuck
    started = time.monotonic()
    reply = connector.server_side_rpc_handler({**content, "id": "9"})
    assert time.monotonic() - started < CONNECTOR_RPC_TIMEOUT_S + 1
    assert isinstance(reply, dict), reply


@pytest.mark.parametrize("content,expected", [
    ({"device": "Nope", "data": {"id": 1, "method": "getStats"}}, "unknown meter 'Nope'"),
    ({"device": "Fine", "data": {"id": 1, "method": "explode"}}, "unknown method 'explode'"),
    ({"device": "Fine", "data": {"id": 1, "method": "get", "params": {"classId": 3}}}, "get needs params.obis"),
    ({"device": "Fine", "data": {"id": 1, "method": "get", "params": {"obis": 12}}}, "params.obis"),
    ({"device": "Fine", "data": {"id": 1, "method": "get", "params": ["1.0.32.7.0.255"]}},
     "params must be a JSON object"),
    ({"device": "Fine", "data": {"id": 1, "method": 42}}, "method must be a string"),
])
def test_bad_device_rpc_gets_an_error_reply_even_with_a_stuck_neighbour(stuck, content, expected):
    connector, gateway = stuck
    connector.server_side_rpc_handler(content)
    assert gateway.wait_for(lambda: gateway.reply_for(1) is not None, 3)
    assert expected in gateway.reply_for(1)["error"]
