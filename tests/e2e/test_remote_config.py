"""Remote configuration from ThingsBoard, end to end, with ``remoteConfiguration: true``.

The fake ThingsBoard writes the shared attribute named after the connector exactly as the gateway
UI does (``name``, ``type``, ``class``, ``configuration`` in camel case, ``logLevel``,
``configurationJson``, ``ts``, ...) and reads what the gateway reports as client attributes. The
gateway runs through devtools/thingsboard_topics.py so that the broker does not echo its own client
attributes back to it (ThingsBoard does not). One gateway, in order:
  Meter A  public client, load profile: stays; its poll period changes (3 s -> 1 s)
  Meter B  Low authentication, password from ${E2E_METER_PASSWORD}: removed remotely
  Meter C  not configured at start: added remotely
"""
from __future__ import annotations

import json
import time
from itertools import pairwise

import pytest

from e2e_support import stop_gateway
from test_profiles_e2e import LOAD, expected, intervals
from tb_dlms.devtools.gateway_process import GatewayProcess, wait_until
from tb_dlms.launcher.remote_config import CONNECTOR_KEY, ERRORS_KEY, METERS_KEY, STATUS_KEY
from tb_dlms.simulator import MeterSpec, Simulator

A, B, C = "Meter A", "Meter B", "Meter C"
NAME = "DLMS Connector"
PASSWORD = "s3cret-pw-4711"
ENV = {"E2E_METER_PASSWORD": PASSWORD}


def device(sim, name, period, **connection):
    dev = {"deviceName": name, "deviceType": "dlms-meter", "pollPeriod": period,
           "connection": {"host": "127.0.0.1", "port": sim.port_of(name), **connection},
           "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}]}
    if name == A:
        dev["profiles"] = [{"obis": LOAD, "columns": {"1.0.1.8.0.255": "energyImport",
                                                      "1.0.2.8.0.255": "energyExport"}, "readEvery": 2}]
    return dev


def low(password="${E2E_METER_PASSWORD}"):
    return {"authentication": "low", "clientAddress": 32, "password": password}


def connector_json(devices) -> dict:
    return {"name": NAME, "id": "e2e-remote", "logLevel": "DEBUG",
            "defaults": {"timeoutMs": 1000, "retries": 1, "connectTimeoutMs": 1000}, "devices": devices}


def send_from_ui(fake_tb, configuration_json: dict) -> int:
    """The shared attribute ThingsBoard's gateway UI writes when a connector is saved."""
    ts = int(time.time() * 1000)
    fake_tb.set_shared_attributes({NAME: {
        "name": NAME, "type": "dlms", "class": "DLMSConnector", "configuration": "dlmsConnector.json",
        "logLevel": "DEBUG", "enableRemoteLogging": False, "sendDataOnlyOnChange": False,
        "configVersion": "3.8.5", "configurationJson": configuration_json, "ts": ts}})
    return ts


def status_after(fake_tb, since_messages: int, timeout=30.0) -> dict:
    """The gateway's next report about a remote configuration (client attributes)."""
    def reported():
        for m in fake_tb.gateway_attributes[since_messages:]:
            if isinstance(m.payload, dict) and STATUS_KEY in m.payload:
                return m.payload
        return None

    return fake_tb.wait_for(reported, timeout, "the remote configuration status")


def stamps(fake_tb, name, since):
    return sorted({p.ts for p in fake_tb.telemetry_of(name) if "voltageL1" in p.values and p.received >= since})


def one_second_apart(ts: list[int]) -> bool:
    """Two consecutive polls on a 1 s grid (the poll timestamp is the meter's, within a few ms)."""
    return any(abs(b - a - 1000) < 250 for a, b in pairwise(ts))


def assert_intervals_once(fake_tb, sim, name, timeout=40.0):
    want = set(expected(sim, name))
    fake_tb.wait_for(lambda: want <= {p.ts for p in intervals(fake_tb, name)}, timeout, f"every interval of {name}")
    seen = [p.ts for p in intervals(fake_tb, name)]
    assert len(seen) == len(set(seen)), "an interval was sent twice across the reload"


@pytest.fixture(scope="module")
def simulator():
    sim = Simulator([MeterSpec(A, profile_days=1), MeterSpec(B, auth="low", client_address=32, password=PASSWORD),
                     MeterSpec(C)]).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, simulator, tmp_path_factory):
    config = connector_json([device(simulator, A, 3), device(simulator, B, 1, **low())])
    gw = GatewayProcess(broker.port, connector_config=config, workdir=tmp_path_factory.mktemp("gateway-remote"),
                        main_config_overrides={"thingsboard": {"remoteConfiguration": True}},
                        extra_env=ENV, thingsboard_topics=True).start()
    yield gw
    if gw.running:
        stop_gateway(gw)


def test_reported_configuration_carries_references_not_values(gateway, fake_tb, simulator):
    fake_tb.wait_telemetry(B, ["voltageL1"])
    reported = fake_tb.wait_for(lambda: (fake_tb.client_attributes.get(NAME) or {}).get("configurationJson"), 30,
                                "the connector configuration reported to ThingsBoard")
    assert [d["deviceName"] for d in reported["devices"]] == [A, B]
    assert reported["devices"][1]["connection"]["password"] == "${E2E_METER_PASSWORD}"
    assert fake_tb.client_attribute("active_connectors") == [NAME]
    assert PASSWORD not in json.dumps([m.payload for m in fake_tb.messages], default=str)
    assert_intervals_once(fake_tb, simulator, A)


def test_poll_period_changed_meter_added_and_removed(gateway, fake_tb, simulator):
    mark = len(fake_tb.gateway_attributes)
    ts = send_from_ui(fake_tb, connector_json([device(simulator, A, 1), device(simulator, C, 1)]))
    report = status_after(fake_tb, mark)
    assert report[STATUS_KEY] == "applied" and report[ERRORS_KEY] == [] and report[CONNECTOR_KEY] == NAME
    assert report[METERS_KEY] == 2
    applied = time.time()
    fake_tb.wait_telemetry(C, ["voltageL1"], since=applied)
    # The gateway echoes the new configuration: ThingsBoard's UI then shows the connector in sync.
    echo = fake_tb.wait_for(lambda: (fake_tb.client_attributes.get(NAME) or {}).get("ts", 0) >= ts and
                            fake_tb.client_attributes[NAME], 20, "the configuration echoed")
    assert [d["deviceName"] for d in echo["configurationJson"]["devices"]] == [A, C]
    # The running file is the connector's own, not the UI's camel-case name.
    assert [d["deviceName"] for d in gateway.connector_config()["devices"]] == [A, C]
    assert not (gateway.config_dir / "dlmsConnector.json").exists()
    assert not (gateway.runtime_dir / "dlmsConnector.json").exists()
    # Meter A at 1 s: consecutive poll timestamps 1 s apart.
    fake_tb.wait_for(lambda: one_second_apart(stamps(fake_tb, A, applied)), 30, "Meter A polled every second")
    # Meter B removed: its link closed (association released) and no more requests reach it.
    wait_until(lambda: not simulator.meter(B).links, 20, "Meter B's link closed")
    requests = simulator.meter(B).requests
    fake_tb.wait_telemetry(C, ["voltageL1"], since=time.time())
    assert simulator.meter(B).requests == requests
    stats = fake_tb.connector_rpc("dlms_getStats")
    assert set(stats["meters"]) == {A, C} and stats["pollingThreads"] == 1
    assert_intervals_once(fake_tb, simulator, A)


def test_broken_configuration_refused_old_meters_keep_reporting(gateway, fake_tb, simulator):
    file_before = gateway.connector_config()
    mark = len(fake_tb.gateway_attributes)
    broken = connector_json([{**device(simulator, A, -1), "pollPerod": 2}, device(simulator, C, 1)])
    send_from_ui(fake_tb, broken)
    report = status_after(fake_tb, mark)
    refused_at = time.time()
    assert report[STATUS_KEY] == "refused"
    text = "\n".join(report[ERRORS_KEY])
    assert 'devices[0] "Meter A": pollPeriod' in text and "pollPerod is not a known key" in text, text
    assert gateway.connector_config() == file_before
    # The old meters keep reporting on their 1 s grid, from the same (only) polling loop.
    for name in (A, C):
        fake_tb.wait_for(lambda name=name: len(stamps(fake_tb, name, refused_at)) >= 3, 20, f"{name} still polled")
        got = stamps(fake_tb, name, refused_at)
        assert one_second_apart(got), got
    assert fake_tb.connector_rpc("dlms_getStats")["pollingThreads"] == 1
    # The connector's log has it too (the UI's error count and remote log come from there).
    assert "Remote configuration refused" in gateway.log_text()


def test_clear_password_refused_and_never_reported(gateway, fake_tb, simulator):
    mark = len(fake_tb.gateway_attributes)
    send_from_ui(fake_tb, connector_json([device(simulator, A, 1), device(simulator, C, 1),
                                          device(simulator, B, 1, **low(PASSWORD))]))
    report = status_after(fake_tb, mark)
    assert report[STATUS_KEY] == "refused"
    assert any('devices[2] "Meter B": connection.password must be a ${ENV_VAR} reference' in e
               for e in report[ERRORS_KEY]), report[ERRORS_KEY]
    assert [d["deviceName"] for d in gateway.connector_config()["devices"]] == [A, C]
    gateway_side = json.dumps([m.payload for m in fake_tb.gateway_attributes], default=str)
    assert PASSWORD not in gateway_side and PASSWORD not in json.dumps(report)
    assert PASSWORD not in gateway.log_text()


def test_restart_keeps_the_remote_configuration(gateway, fake_tb, simulator):
    stop_gateway(gateway)
    mark = len(fake_tb.gateway_attributes)
    gateway.start()
    restarted = time.time()
    fake_tb.wait_telemetry(C, ["voltageL1"], since=restarted, timeout=40)
    fake_tb.wait_telemetry(A, ["voltageL1"], since=restarted, timeout=40)
    assert not [p for p in fake_tb.telemetry_of(B) if p.received >= restarted]
    # ThingsBoard still holds the refused shared attribute: asked for it at start, refused again.
    assert status_after(fake_tb, mark)[STATUS_KEY] == "refused"
    assert [d["deviceName"] for d in gateway.connector_config()["devices"]] == [A, C]
    assert fake_tb.connector_rpc("dlms_getStats")["pollingThreads"] == 1
    assert_intervals_once(fake_tb, simulator, A)
