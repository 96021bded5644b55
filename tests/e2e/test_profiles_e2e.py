"""Interval data end to end: simulator -> real gateway (subprocess) -> Mosquitto -> fake ThingsBoard.

Every 15-minute interval the meter holds must reach ThingsBoard exactly once, with the meter's
timestamp, through a link outage, a ThingsBoard (broker) outage and a gateway restart. The tests
run in order on one gateway and one simulator:
  Meter P  public client (read only): load profile + event log; refusals of writes and methods
  Meter C  Low authentication (client 32): clock (deviation signed local minus UTC), writes, relay,
           attribute updates
  Meter G  High-GMAC, keys from the environment: load profile in ciphered blocks
"""
from __future__ import annotations

import json

import pytest

from e2e_support import stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess, wait_until
from tb_dlms.simulator import MeterSpec, Simulator
from tb_dlms.simulator.faults import Fault
from tb_dlms.simulator.objects import CAPTURE_PERIOD

LOAD = "1.0.99.1.0.255"
EVENTS = "0.0.99.98.0.255"
PASSWORD = "12345678"
P, C, G = "Meter P", "Meter C", "Meter G"
#: Meter G's keys reach the gateway as environment variables, never through the config file.
GMAC = MeterSpec(G, auth="high_gmac", profile_days=1, max_pdu=256)
GMAC_ENV = {"E2E_BLOCK_CIPHER_KEY": GMAC.block_cipher_key.hex(),
            "E2E_AUTHENTICATION_KEY": GMAC.authentication_key.hex()}


def _connector_config(sim: Simulator) -> dict:
    def device(name, **extra):
        dev = {"deviceName": name, "deviceType": "dlms-meter", "pollPeriod": 1,
               "connection": {"host": "127.0.0.1", "port": sim.port_of(name)},
               "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}]}
        dev.update(extra)
        return dev

    return {
        "name": "DLMS Connector", "id": "e2e-profiles", "logLevel": "DEBUG",
        "defaults": {"timeoutMs": 1000, "retries": 1, "connectTimeoutMs": 1000},
        "devices": [
            device(P, profiles=[{"obis": LOAD, "columns": {"1.0.1.8.0.255": "energyImport",
                                                           "1.0.2.8.0.255": "energyExport"},
                                 "windowHours": 24, "horizonDays": 7, "readEvery": 2}],
                   eventLogs=[{"obis": EVENTS, "readEvery": 2}]),
            device(C, connection={"host": "127.0.0.1", "port": sim.port_of(C), "authentication": "low",
                                  "clientAddress": 32, "clockDeviation": "local-minus-utc",
                                  # The connector JSON takes the YAML's ${VAR:-default} (config/env.py).
                                  "password": "${E2E_UNSET_METER_PASSWORD:-" + PASSWORD + "}"},
                   clock={"driftKey": "clockDriftS"},
                   attributeUpdates=[{"key": "relay", "obis": "0.0.96.3.10.255", "classId": 70,
                                      "method": {"true": 2, "false": 1}}]),
            device(G, connection={"host": "127.0.0.1", "port": sim.port_of(G), "authentication": "high_gmac",
                                  "clientAddress": GMAC.client_address, "maxPduSize": 256,
                                  "security": {"systemTitle": "5442444c4d533031",
                                               "blockCipherKey": "${E2E_BLOCK_CIPHER_KEY}",
                                               "authenticationKey": "${E2E_AUTHENTICATION_KEY}"}},
                   profiles=[{"obis": LOAD, "columns": {"1.0.1.8.0.255": "energyImport",
                                                        "1.0.2.8.0.255": "energyExport"},
                              "readEvery": 2}]),
        ],
    }


@pytest.fixture(scope="module")
def simulator():
    sim = Simulator([MeterSpec(P, profile_days=3),
                     MeterSpec(C, auth="low", client_address=32, password=PASSWORD, profile_days=1,
                               deviation_local_minus_utc=True),
                     GMAC]).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, simulator, tmp_path_factory):
    gw = GatewayProcess(broker.port, connector_config=_connector_config(simulator),
                        workdir=tmp_path_factory.mktemp("gateway-profiles"), extra_env=GMAC_ENV).start()
    yield gw
    if gw.running:
        stop_gateway(gw)


def expected(sim, name) -> dict[int, tuple[int, int]]:
    meter = sim.meter(name)
    last = int(meter.now() // CAPTURE_PERIOD * CAPTURE_PERIOD)
    return {t * 1000: (round(meter.load.energy_import(t)), round(meter.load.energy_export(t)))
            for t in range(int(meter.profile_first), last + 1, CAPTURE_PERIOD)}


def intervals(fake_tb, name) -> list:
    return [p for p in fake_tb.telemetry_of(name) if "energyImport" in p.values]


def assert_every_interval_once(fake_tb, sim, name, timeout=40.0) -> dict:
    def complete():
        return set(expected(sim, name)) <= {p.ts for p in intervals(fake_tb, name)}

    try:
        fake_tb.wait_for(complete, timeout, f"every interval of {name}")
    except TimeoutError:
        missing = sorted(set(expected(sim, name)) - {p.ts for p in intervals(fake_tb, name)})
        raise AssertionError(f"{len(missing)} interval(s) missing, first {missing[:3]}") from None
    want = expected(sim, name)
    points = intervals(fake_tb, name)
    stamps = [p.ts for p in points]
    duplicates = sorted({t for t in stamps if stamps.count(t) > 1})
    assert not duplicates, f"{len(duplicates)} interval(s) sent more than once, first {duplicates[:3]}"
    for point in points:
        if point.ts in want:
            assert (point.values["energyImport"], point.values["energyExport"]) == want[point.ts], point
    return want


def swallowed(sim, name, requests: int) -> None:
    """Wait until the meter (behind a blackhole) has taken ``requests`` more requests unanswered."""
    meter = sim.meter(name)
    start = meter.requests
    wait_until(lambda: meter.requests >= start + requests, 30, f"{requests} requests to {name} swallowed")


def cursor_reached(gateway, name: str, obis: str, ts_ms: int, timeout: float = 30) -> None:
    """Wait until the connector's durable cursor for ``name``/``obis`` stands at ``ts_ms``:
    the rows up to it were read from the meter and handed to the gateway's storage."""
    def at() -> bool:
        for path in (gateway.data_dir / "tb_dlms").glob("*.cursors.json"):
            try:
                cursor = json.loads(path.read_text())["meters"][name][obis]
            except (OSError, ValueError, KeyError):
                continue
            if cursor.get("ts", 0) >= ts_ms:
                return True
        return False
    wait_until(at, timeout, f"the cursor of {name} {obis} at {ts_ms}")


def rpc(fake_tb, device, method, params=None):
    return fake_tb.device_rpc(device, method, {} if params is None else params, timeout=30)


# -- interval data, in order ------------------------------------------------------------------------


def test_three_days_backfilled_once_with_meter_timestamps(gateway, fake_tb, simulator):
    want = assert_every_interval_once(fake_tb, simulator, P, timeout=60)
    assert len(want) >= 3 * 96


def test_high_gmac_profile_backfilled_once_keys_never_logged(gateway, fake_tb, simulator):
    want = assert_every_interval_once(fake_tb, simulator, G, timeout=60)
    assert len(want) >= 96
    log = gateway.log_text()
    for key in GMAC_ENV.values():
        assert key not in log


def test_link_outage_gap_is_backfilled(gateway, fake_tb, simulator):
    simulator.inject(P, Fault("blackhole"))
    simulator.advance_clock(P, 6 * CAPTURE_PERIOD)
    swallowed(simulator, P, 4)  # polls go unanswered: the connector sees the link fail
    simulator.clear(P)
    assert_every_interval_once(fake_tb, simulator, P)


def test_thingsboard_outage_loses_nothing(gateway, fake_tb, simulator, broker):
    broker.stop()
    simulator.advance_clock(P, 5 * CAPTURE_PERIOD)
    # The connector reads the new intervals and hands them to the gateway's storage meanwhile.
    cursor_reached(gateway, P, LOAD, max(expected(simulator, P)))
    broker.start()
    assert_every_interval_once(fake_tb, simulator, P, timeout=60)


def test_gateway_restart_resumes_from_the_cursor(gateway, fake_tb, simulator):
    assert_every_interval_once(fake_tb, simulator, P)
    stop_gateway(gateway)
    cursors = list((gateway.data_dir / "tb_dlms").glob("*.cursors.json"))
    assert cursors, "no cursor file next to the gateway's storage"
    simulator.advance_clock(P, 4 * CAPTURE_PERIOD)
    gateway.start()
    assert_every_interval_once(fake_tb, simulator, P, timeout=60)


def test_events_sent_once_with_names(gateway, fake_tb, simulator):
    meter = simulator.meter(P)
    want = {(int(t) * 1000, code) for t, code in meter.events}
    got = fake_tb.wait_for(lambda: [p for p in fake_tb.telemetry_of(P) if "eventCode" in p.values]
                           if len([p for p in fake_tb.telemetry_of(P) if "eventCode" in p.values]) >= len(want)
                           else None, 30, "events of Meter P")
    assert sorted((p.ts, p.values["eventCode"]) for p in got) == sorted(want)
    assert {p.values["eventCode"]: p.values["eventName"] for p in got}[1] == "Power down"


# -- clock and RPCs ---------------------------------------------------------------------------------


def test_clock_drift_reported_and_sync_clock(gateway, fake_tb, simulator):
    points = fake_tb.wait_telemetry(C, ["clockDriftS"], timeout=30)
    assert abs(next(p.values["clockDriftS"] for p in points if "clockDriftS" in p.values)) < 3
    simulator.advance_clock(C, 120)
    reply = rpc(fake_tb, C, "syncClock")
    assert reply.get("success") is True and 117 < reply["driftBeforeS"] < 123, reply
    assert abs(reply["driftAfterS"]) < 3, reply


def test_get_and_set_with_json_and_key_value_params(gateway, fake_tb):
    reply = rpc(fake_tb, C, "set", {"obis": "0.0.96.3.10.255", "classId": 70, "attribute": 4, "value": 3,
                                    "type": "enum"})
    assert reply.get("success") is True, reply
    reply = rpc(fake_tb, C, "get", "obis=0.0.96.3.10.255;classId=70;attribute=4")
    assert reply.get("value") == 3, reply
    reply = rpc(fake_tb, C, "set", "obis=0.0.96.3.10.255;classId=70;attribute=4;value=4;type=enum")
    assert reply.get("success") is True, reply


def test_relay_rpcs_and_attribute_update(gateway, fake_tb, simulator):
    reply = rpc(fake_tb, C, "disconnect")
    assert reply.get("outputState") is False and reply["controlState"] == "disconnected", reply
    reply = rpc(fake_tb, C, "reconnectRelay")
    assert reply.get("outputState") is True, reply
    fake_tb.send_attribute_update(C, {"relay": False})
    fake_tb.wait_for(lambda: simulator.meter(C).output_state is False, 20, "relay off by attribute update")
    assert rpc(fake_tb, C, "relayState")["controlState"] == "disconnected"
    fake_tb.send_attribute_update(C, {"relay": True})
    fake_tb.wait_for(lambda: simulator.meter(C).output_state is True, 20, "relay on by attribute update")


@pytest.mark.parametrize("device,method,params,words", [
    (P, "set", {"obis": "1.0.32.7.0.255", "value": 1, "type": "uint16"}, ["1.0.32.7.0.255", "denied"]),
    (C, "set", {"obis": "1.0.32.7.0.255", "value": 1, "type": "uint16"}, ["1.0.32.7.0.255", "denied"]),
    (C, "get", {"obis": "0.0.96.99.0.255", "classId": 1}, ["0.0.96.99.0.255", "undefined"]),
    (P, "disconnect", {}, ["0.0.96.3.10.255"]),
    (P, "syncClock", {}, ["0.0.1.0.0.255"]),
    (C, "set", {"obis": "0.0.96.3.10.255", "classId": 70, "attribute": 4, "value": 1}, ["params.type"]),
    (C, "set", {"obis": "0.0.96.3.10.255", "value": -1, "type": "uint8"}, ["params.value"]),
    (C, "readProfile", {"obis": LOAD}, ["params.from"]),
    (C, "readProfile", {"obis": "x", "from": 0}, ["params.obis"]),
])
def test_refusals_and_bad_parameters_answered_with_clear_errors(gateway, fake_tb, device, method, params, words):
    reply = rpc(fake_tb, device, method, params)
    assert isinstance(reply, dict) and reply.get("error"), reply
    for word in words:
        assert word.lower() in reply["error"].lower(), reply


def test_read_profile_rpc_returns_and_resends_rows(gateway, fake_tb, simulator):
    """Last: it re-sends intervals on purpose (send=true)."""
    end = int(simulator.meter(P).now() // CAPTURE_PERIOD * CAPTURE_PERIOD) * 1000
    start = end - 3 * CAPTURE_PERIOD * 1000
    reply = rpc(fake_tb, P, "readProfile", {"obis": LOAD, "from": start, "to": end, "send": True})
    assert [r["ts"] for r in reply["rows"]] == [start + i * CAPTURE_PERIOD * 1000 for i in range(4)], reply
    assert reply["sent"] == 4 and set(reply["rows"][0]["values"]) == {"energyImport", "energyExport"}
    fake_tb.wait_for(lambda: sum(1 for p in intervals(fake_tb, P) if p.ts == end) == 2, 20, "re-sent interval")


def test_gateway_log_has_no_tracebacks(gateway):
    text = gateway.log_text()
    assert "Traceback (most recent call last)" not in text, text[-4000:]
