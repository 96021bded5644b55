"""The connector as the gateway drives it: its thread, data hand-over, RPC replies, stop."""
from __future__ import annotations

import json
import threading
import time

import pytest
from gateway_fakes import FakeFleet, FakeGateway, MeterScript

from tb_dlms.gateway import commands
from tb_dlms.gateway.connector import STOP_TIMEOUT_S, DLMSConnector

PASSWORD = "pa55-w0rd-never-shown"
KEY = "000102030405060708090a0b0c0d0e0f"


def meter(name: str, port: int, **extra) -> dict:
    return {
        "deviceName": name,
        "deviceType": "dlms-meter",
        "pollPeriod": 0.05,
        "connection": {"host": "127.0.0.1", "port": port},
        "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"},
                       {"key": "energyImport", "obis": "1.0.1.8.0.255"}],
        "attributes": [{"key": "serialNumber", "obis": "0.0.96.1.0.255", "classId": 1}],
        **extra,
    }


def connector_config(*devices) -> dict:
    return {"name": "DLMS Test", "id": "conn-1", "logLevel": "DEBUG",
            "devices": list(devices) or [meter("Meter 1", 4059), meter("Meter 2", 4060)]}


@pytest.fixture
def gateway():
    return FakeGateway()


@pytest.fixture
def running(gateway):
    """A started connector with two healthy fake meters; closed after the test."""
    fleet = FakeFleet(**{"Meter 1": MeterScript(values={"1.0.32.7.0.255": 230.1}),
                         "Meter 2": MeterScript(values={"1.0.32.7.0.255": 229.9})})
    connector = DLMSConnector(gateway, connector_config(), "dlms", session_factory=fleet)
    connector.open()
    assert gateway.wait_for(lambda: all(gateway.telemetry(m) for m in ("Meter 1", "Meter 2")))
    yield connector, fleet
    connector.close()


def device_rpc(connector, gateway, device, method, params=None, req_id=1):
    connector.server_side_rpc_handler({"device": device, "data": {"id": req_id, "method": method,
                                                                  "params": params}})
    assert gateway.wait_for(lambda: gateway.reply_for(req_id) is not None), f"no reply to {method}"
    return gateway.reply_for(req_id)


def test_gateway_facing_identity(gateway):
    connector = DLMSConnector(gateway, connector_config(), "dlms", session_factory=FakeFleet())
    assert (connector.get_name(), connector.get_id(), connector.get_type()) == ("DLMS Test", "conn-1", "dlms")
    assert connector.get_config()["devices"][0]["deviceName"] == "Meter 1"
    assert connector.statistics == {"MessagesReceived": 0, "MessagesSent": 0}
    assert not connector.is_stopped() and not connector.is_connected()
    connector.close()


def test_telemetry_reaches_storage_per_meter(running, gateway):
    connector, _ = running
    name, connector_id, _ = gateway.stored[0]
    assert (name, connector_id) == ("DLMS Test", "conn-1")
    ts, values = gateway.telemetry("Meter 1")[0]
    assert values == {"voltageL1": 230.1, "energyImport": 1.0}
    assert abs(ts - time.time() * 1000) < 60_000
    assert gateway.telemetry("Meter 2")[0][1]["voltageL1"] == 229.9
    assert gateway.wait_for(lambda: gateway.attributes("Meter 1").get("serialNumber") == 1.0)
    assert gateway.attributes("Meter 1")["dlmsConnected"] is True
    assert connector.is_connected()
    assert connector.statistics["MessagesSent"] >= 3


def test_one_polling_thread_for_all_meters(gateway):
    before = {t.name for t in threading.enumerate()}
    connector = DLMSConnector(gateway, connector_config(), "dlms", session_factory=FakeFleet())
    connector.open()
    try:
        new = [t for t in threading.enumerate() if t.name not in before]
        polling = [t for t in new if not t.name.endswith("watchdog")]  # the loop's watchdog only sleeps
        assert len(polling) == 1 and all(t.daemon for t in new) and len(new) == 2
    finally:
        connector.close()


def test_a_hung_meter_does_not_delay_the_others(gateway):
    hung = MeterScript(hang=True, hang_close=True)
    healthy = MeterScript()
    fleet = FakeFleet(**{"Dead": hung, "Alive": healthy})
    config = connector_config(meter("Dead", 4059, pollTimeoutMs=600_000), meter("Alive", 4060))
    connector = DLMSConnector(gateway, config, "dlms", session_factory=fleet)
    connector.open()
    try:
        assert hung.wait_for(lambda: hung.reads_started >= 1)
        assert gateway.wait_for(lambda: len(gateway.telemetry("Alive")) >= 5)  # while Dead's first read hangs
        assert hung.reads == 0 and hung.reads_started == 1
        assert gateway.telemetry("Dead") == []
    finally:
        started = time.monotonic()
        connector.close()
        assert time.monotonic() - started < STOP_TIMEOUT_S
    assert connector.is_stopped()


def test_a_timed_out_meter_reports_it_and_keeps_polling(gateway):
    hung = MeterScript(hang=True)
    fleet = FakeFleet(Slow=hung)
    connector = DLMSConnector(gateway, connector_config(meter("Slow", 4059, pollTimeoutMs=30)), "dlms",
                              session_factory=fleet)
    connector.open()
    try:
        assert hung.wait_for(lambda: hung.reads_started >= 3 and hung.closes >= 2)
        assert gateway.wait_for(lambda: "timed out" in str(gateway.attributes("Slow").get("lastError")))
        assert gateway.attributes("Slow")["dlmsConnected"] is False
    finally:
        connector.close()


# -- RPC --------------------------------------------------------------------------------------


def test_get_stats_rpc_has_counters_and_no_secrets(gateway):
    secured = meter("Meter 1", 4059)
    secured["connection"].update(authentication="low", password=PASSWORD)
    gmac = meter("Meter 2", 4060)
    gmac["connection"].update(authentication="high_gmac", security={
        "systemTitle": "4d4d4d0000bc614e", "blockCipherKey": KEY, "authenticationKey": KEY})
    connector = DLMSConnector(gateway, connector_config(secured, gmac), "dlms", session_factory=FakeFleet())
    connector.open()
    try:
        assert gateway.wait_for(lambda: gateway.telemetry("Meter 1") and gateway.telemetry("Meter 2"))
        stats = device_rpc(connector, gateway, "Meter 1", "getStats", {}, req_id=7)
        assert stats["device"] == "Meter 1" and stats["pollsOk"] >= 1 and stats["connected"] is True
        for key in ("pollsFailed", "successRate", "lastError", "pollP50Ms", "pollP95Ms", "roundTrips",
                    "bytesSent", "bytesReceived", "breaker", "lastPollMs"):
            assert key in stats, key
        assert stats["breaker"]["state"] == "closed" and stats["breaker"]["opens"] == 0
        everything = connector.server_side_rpc_handler({"method": "dlms_getStats", "params": {}, "id": "8"})
        assert set(everything["meters"]) == {"Meter 1", "Meter 2"} and everything["count"] == 2
        for text in (json.dumps(stats), json.dumps(everything)):
            assert PASSWORD not in text and KEY not in text
    finally:
        connector.close()


def test_reconnect_rpc_closes_the_session_and_the_next_poll_reassociates(running, gateway):
    connector, fleet = running
    script = fleet.script("Meter 1")
    reply = device_rpc(connector, gateway, "Meter 1", "reconnect", req_id=11)
    assert reply == {"success": True, "device": "Meter 1"}
    assert script.closes == 1
    session = script.sessions[-1]
    assert script.wait_for(lambda: session.stats.associations >= 2)


def test_read_attributes_and_get_rpcs(running, gateway):
    connector, _ = running
    reply = device_rpc(connector, gateway, "Meter 1", "readAttributes", req_id=12)
    assert reply == {"attributes": {"serialNumber": 1.0}, "errors": {}}
    reply = device_rpc(connector, gateway, "Meter 1", "get", {"obis": "1-0:32.7.0*255"}, req_id=13)
    assert reply["value"] == 230.1 and reply["obis"] == "1.0.32.7.0.255"


def test_connector_reconnect_one_or_all(running, gateway):
    connector, fleet = running
    one = connector.server_side_rpc_handler({"method": "dlms_reconnect", "params": {"device": "Meter 2"}, "id": "1"})
    assert one == {"success": True, "reconnected": ["Meter 2"]}
    assert (fleet.script("Meter 1").closes, fleet.script("Meter 2").closes) == (0, 1)
    for params in (None, {}, {"all": True}, "{}"):
        reply = connector.server_side_rpc_handler({"method": "dlms_reconnect", "params": params, "id": "2"})
        assert reply == {"success": True, "reconnected": ["Meter 1", "Meter 2"]}
    one_stats = connector.server_side_rpc_handler({"method": "dlms_getStats", "params": {"device": "Meter 2"}})
    assert list(one_stats["meters"]) == ["Meter 2"]


BAD_DEVICE_RPCS = [
    ("Meter 1", "frobnicate", None, "unknown method 'frobnicate' for meter Meter 1; known: getStats"),
    ("Nope", "getStats", None, "unknown meter 'Nope'"),
    ("Meter 1", "getStats", 5, "params must be a JSON object, got int"),
    ("Meter 1", "getStats", "not json", "params must be a JSON object, got the string"),
    ("Meter 1", "get", {}, "get needs params.obis"),
    ("Meter 1", "get", {"obis": "1.0.32"}, "params.obis: invalid OBIS code '1.0.32'"),
    ("Meter 1", "get", {"obis": "1.0.32.7.0.255", "classId": "3"},
     'params.classId must be an integer 1..65535, got "3"'),
    ("Meter 1", "get", {"obis": "1.0.32.7.0.255", "attribute": 0},
     "params.attribute must be an integer 1..127, got 0"),
    ("Meter 1", "", None, "RPC for Meter 1: request has no method; known: getStats"),
    ("Meter 1", None, None, "RPC for Meter 1: request has no method; known: getStats"),
]


@pytest.mark.parametrize("device,method,params,expected", BAD_DEVICE_RPCS,
                         ids=[f"{b[0]}:{b[1]}:{b[2]}" for b in BAD_DEVICE_RPCS])
def test_bad_device_rpc_gets_an_error_reply(running, gateway, device, method, params, expected):
    connector, _ = running
    reply = device_rpc(connector, gateway, device, method, params, req_id=99)
    assert set(reply) == {"error"} and expected in reply["error"], reply
    assert gateway.replies[-1][0] == device


def test_meter_failure_during_rpc_is_an_error_reply(running, gateway):
    connector, fleet = running
    fleet.script("Meter 1").fail = ConnectionResetError("link reset by peer")
    reply = device_rpc(connector, gateway, "Meter 1", "readAttributes", req_id=21)
    assert reply == {"error": "Meter 1: readAttributes failed: link reset by peer"}


BAD_CONNECTOR_RPCS = [
    ({"method": "dlms_frobnicate"}, "unknown method dlms_frobnicate; known: dlms_getStats, dlms_reconnect"),
    ({"method": "dlms_reconnect", "params": {"device": "Nope"}}, "unknown meter 'Nope'"),
    ({"method": "dlms_reconnect", "params": {"device": 7}}, "params.device must be a meter name (string), got 7"),
    ({"method": "dlms_reconnect", "params": {"all": "yes"}}, 'params.all must be true or false, got "yes"'),
    ({"method": "dlms_reconnect", "params": {"all": False}}, "params.all is false and no params.device given"),
    ({"method": "dlms_reconnect", "params": {"all": True, "device": "Meter 1"}}, "give either params.device"),
    ({"method": "dlms_getStats", "params": [1]}, "params must be a JSON object, got list"),
    ({"params": {}}, "request has no method"),
]


@pytest.mark.parametrize("content,expected", BAD_CONNECTOR_RPCS, ids=[str(b[0]) for b in BAD_CONNECTOR_RPCS])
def test_bad_connector_rpc_returns_an_error(running, content, expected):
    connector, _ = running
    reply = connector.server_side_rpc_handler({**content, "id": "5"})
    assert set(reply) == {"error"} and expected in reply["error"], reply


def test_echoed_reply_without_method_is_ignored(running, gateway):
    connector, _ = running
    assert connector.server_side_rpc_handler({"device": "Meter 1", "id": 3, "data": {"success": True}}) is None
    assert connector.server_side_rpc_handler({"device": "Meter 1", "data": "x"}) is None
    assert gateway.replies == []


def test_attribute_updates_are_accepted_and_ignored(running, gateway, monkeypatch):
    """Without an ``attributeUpdates`` mapping nothing is written to the meter, nothing is answered."""
    connector, fleet = running
    applied: list[tuple] = []
    monkeypatch.setattr(commands, "apply_attribute_updates", lambda *args: applied.append(args))
    for content in ({"device": "Meter 1", "data": {"anything": 1}}, {"device": "Nobody", "data": {"x": 1}},
                    {"device": "Meter 1", "data": "not an object"}, "not an object"):
        assert connector.on_attributes_update(content) is None
    assert applied == [] and gateway.replies == []
    reads = fleet.script("Meter 1").reads
    assert fleet.script("Meter 1").wait_for(lambda: fleet.script("Meter 1").reads > reads)  # still polling


# -- stop -------------------------------------------------------------------------------------


def test_close_is_quick_idempotent_and_bounded_with_stuck_sessions(gateway):
    stuck = MeterScript(hang=True, hang_close=True)
    connector = DLMSConnector(gateway, connector_config(meter("Stuck", 4059, pollTimeoutMs=600_000)), "dlms",
                              session_factory=FakeFleet(Stuck=stuck))
    connector.open()
    assert stuck.wait_for(lambda: stuck.reads_started >= 1)
    started = time.monotonic()
    connector.close()
    assert time.monotonic() - started < STOP_TIMEOUT_S
    assert connector.is_stopped()
    started = time.monotonic()
    connector.close()
    assert time.monotonic() - started < 0.5


def test_close_without_open(gateway):
    connector = DLMSConnector(gateway, connector_config(), "dlms", session_factory=FakeFleet())
    connector.close()
    connector.close()
    assert connector.is_stopped()


def test_rpcs_after_close_get_an_error(gateway):
    connector = DLMSConnector(gateway, connector_config(), "dlms", session_factory=FakeFleet())
    connector.open()
    connector.close()
    reply = device_rpc(connector, gateway, "Meter 1", "getStats", req_id=31)
    assert reply == {"error": "DLMS Test is not running"}
    assert connector.server_side_rpc_handler({"method": "dlms_getStats", "id": "1"}) == {
        "error": "DLMS Test is not running"}


def test_invalid_devices_are_logged_and_skipped(gateway, caplog):
    bad = meter("Broken", 4061)
    bad["connection"]["interface"] = "serial"
    with caplog.at_level("ERROR"):
        connector = DLMSConnector(gateway, connector_config(meter("Meter 1", 4059), bad), "dlms",
                                  session_factory=FakeFleet())
    assert list(connector.devices) == ["Meter 1"]
    assert any('devices[1] "Broken": connection.interface' in r.getMessage() for r in caplog.records)
    connector.close()


def test_extension_shim_exposes_the_class():
    import runpy
    from pathlib import Path

    shim = Path(__file__).resolve().parents[2] / "connectors" / "extensions" / "dlms" / "dlms_connector.py"
    namespace = runpy.run_path(str(shim))
    assert namespace["DLMSConnector"] is DLMSConnector


def test_the_raw_text_of_an_unparsable_file_is_reported_not_a_crash(gateway, caplog):
    """What 3.8.5 hands the constructor when simplejson refused the file (NaN here), named by its table."""
    handed_over = "{id_var_start}4f1e{id_var_end}" + '{"logLevel": "INFO", "devices": [{"pollPeriod": NaN}]}'
    gateway.connectors_configs = {"dlms": [{"name": "DLMS Main", "config": {"main.json": handed_over}}]}
    connector = DLMSConnector(gateway, handed_over, "dlms", session_factory=FakeFleet())
    assert connector.get_name() == "DLMS Main" and connector.devices == {}
    [error] = connector.config_errors
    assert str(error).startswith("main.json: not valid JSON at line 1 column 49: NaN is not a JSON number "
                                 "(at devices[0]: pollPeriod)")
    assert f"Configuration: {error}" in caplog.text
    connector.close()
    assert connector.is_stopped()


def test_a_top_level_array_is_reported_not_a_crash(gateway, caplog):
    connector = DLMSConnector(gateway, ["logLevel", meter("Meter 1", 4059)], "dlms", session_factory=FakeFleet())
    assert connector.devices == {}
    assert "the connector configuration must be a JSON object {...}, got a list" in caplog.text
    connector.close()


def test_a_bad_device_is_skipped_and_named_with_its_file(gateway, caplog):
    config = connector_config(meter("Meter 1", 4059), meter("Twin", 4059), meter("Meter 2", 4060))
    gateway.connectors_configs = {"dlms": [{"name": "DLMS Test", "config": {"dlms.json": config}}]}
    connector = DLMSConnector(gateway, json.loads(json.dumps(config)), "dlms", session_factory=FakeFleet())
    assert sorted(connector.devices) == ["Meter 1", "Meter 2"]
    assert ('Configuration: dlms.json: devices[1] "Twin": connection.serverAddress WRAPPER client address 16 '
            'with server address 1 on 127.0.0.1:4059 is already used by devices[0] "Meter 1"') in caplog.text
    connector.close()
