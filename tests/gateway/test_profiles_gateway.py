"""Profiles, event logs, clock and meter commands: the connector with real sessions against the simulator.

One simulator for the module; each test builds its own connector (fake gateway) and its own
working directory, so cursors never leak between tests.
"""
from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from gateway_fakes import FakeGateway
from thingsboard_gateway.gateway.constant_enums import Status

from tb_dlms.devtools.gateway_process import wait_until
from tb_dlms.gateway.connector import DLMSConnector
from tb_dlms.simulator.faults import Fault
from tb_dlms.simulator.objects import CAPTURE_PERIOD
from tb_dlms.simulator.simulator import Simulator
from tb_dlms.simulator.spec import MeterSpec

LOAD = "1.0.99.1.0.255"
EVENTS = "0.0.99.98.0.255"
PASSWORD = "12345678"


@pytest.fixture(scope="module")
def sim():
    specs = [
        MeterSpec("P", profile_days=3),
        MeterSpec("NR", profile_days=2, reject_range=True),
        MeterSpec("RW", auth="low", client_address=32, password=PASSWORD, profile_days=1),
        MeterSpec("OUT", profile_days=1),
        MeterSpec("RST", profile_days=1),
        MeterSpec("REF", profile_days=1),
    ]
    with Simulator(specs) as s:
        yield s


def meter_config(sim, name, *, low=False, **extra) -> dict:
    connection = {"host": "127.0.0.1", "port": sim.port_of(name), "timeoutMs": 1000, "retries": 1,
                  "connectTimeoutMs": 1000}
    if low:
        connection.update({"authentication": "low", "clientAddress": 32, "password": PASSWORD})
    dev = {"deviceName": name, "deviceType": "dlms-meter", "pollPeriod": 0.3, "connection": connection,
           "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}],
           "profiles": [{"obis": LOAD, "columns": {"1.0.1.8.0.255": "energyImport", "1.0.2.8.0.255": "energyExport"},
                         "horizonDays": 4, "readEvery": 0.5}]}
    dev.update(extra)
    return dev


def start(gateway, *devices, settle_s: float = 0.1) -> DLMSConnector:
    connector = DLMSConnector(gateway, {"name": "DLMS Test", "id": "c1", "devices": list(devices)}, "dlms")
    assert connector.config_errors == []
    connector.cursors.settle_s = settle_s
    connector.open()
    return connector


def expected_rows(sim, name) -> dict[int, tuple[int, int]]:
    """Every interval the meter holds now: capture ts (ms) -> (import, export)."""
    meter = sim.meter(name)
    last = int(meter.now() // CAPTURE_PERIOD * CAPTURE_PERIOD)
    first = int(meter.profile_first)
    return {t * 1000: (round(meter.load.energy_import(t)), round(meter.load.energy_export(t)))
            for t in range(first, last + 1, CAPTURE_PERIOD)}


def interval_rows(gateway, name) -> list[tuple[int, dict]]:
    return [(ts, v) for ts, v in gateway.telemetry(name) if "energyImport" in v]


def wait_complete(gateway, sim, name, timeout=20.0) -> dict[int, tuple[int, int]]:
    """Wait until every interval the meter holds arrived; then check each came exactly once."""
    def done():
        want = expected_rows(sim, name)
        got = {ts for ts, _ in interval_rows(gateway, name)}
        return set(want) <= got

    assert gateway.wait_for(done, timeout), (
        f"{name}: missing {sorted(set(expected_rows(sim, name)) - {ts for ts, _ in interval_rows(gateway, name)})[:5]}")
    want = expected_rows(sim, name)
    rows = interval_rows(gateway, name)
    stamps = [ts for ts, _ in rows]
    assert len(stamps) == len(set(stamps)), "an interval was sent twice"
    for ts, values in rows:
        if ts in want:
            assert (values["energyImport"], values["energyExport"]) == want[ts], ts
    return want


def device_rpc(connector, gateway, device, method, params=None, req_id=None):
    req_id = req_id or f"{method}-{time.monotonic_ns()}"
    connector.server_side_rpc_handler({"device": device, "data": {"id": req_id, "method": method, "params": params}})
    assert gateway.wait_for(lambda: gateway.reply_for(req_id) is not None, 30), f"no reply to {method}"
    return gateway.reply_for(req_id)


# -- load profile -------------------------------------------------------------------------------


def test_backfill_then_outage_then_restart_every_interval_once(sim):
    gateway = FakeGateway()
    connector = start(gateway, meter_config(sim, "OUT"))
    try:
        want = wait_complete(gateway, sim, "OUT")
        assert len(want) >= 96  # a day of 15-minute intervals, plus the current ones
        # The link goes silent while the meter captures 8 more intervals.
        sim.inject("OUT", Fault("blackhole"))
        sim.advance_clock("OUT", 8 * CAPTURE_PERIOD)
        swallowed = sim.meter("OUT").requests + 4
        wait_until(lambda: sim.meter("OUT").requests >= swallowed, 30, "polls of OUT going unanswered")
        sim.clear("OUT")
        want = wait_complete(gateway, sim, "OUT", timeout=30)
        assert connector.devices["OUT"].report()["archives"][LOAD]["rowsDelivered"] == len(want)
        # The cursor is saved once the rows had time (settle_s) to reach the gateway's storage.
        wait_until(lambda: json.loads(connector.cursors.path.read_text())["meters"]["OUT"][LOAD]["ts"] == max(want)
                   if connector.cursors.path.exists() else False, 10, "the cursor of OUT saved")
    finally:
        connector.close()

    # Gateway down while the meter captures 4 more; the same data dir: the cursor resumes.
    sim.advance_clock("OUT", 4 * CAPTURE_PERIOD)
    connector = start(gateway, meter_config(sim, "OUT"))
    try:
        wait_complete(gateway, sim, "OUT", timeout=30)
    finally:
        connector.close()


def test_meter_rejecting_ranges_is_read_by_entry(sim):
    gateway = FakeGateway()
    connector = start(gateway, meter_config(sim, "NR"))
    try:
        wait_complete(gateway, sim, "NR", timeout=30)
        assert connector.devices["NR"].report()["archives"][LOAD]["byEntry"] is True
        sim.advance_clock("NR", 3 * CAPTURE_PERIOD)
        wait_complete(gateway, sim, "NR", timeout=30)
    finally:
        connector.close()


class RefusingGateway(FakeGateway):
    """The gateway's storage refuses the first hand-overs (e.g. its queue is failing)."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals

    def send_to_storage(self, connector_name, connector_id, data):
        if self.refusals > 0 and data.telemetry:
            self.refusals -= 1
            return Status.FAILURE
        super().send_to_storage(connector_name, connector_id, data)
        return Status.SUCCESS


def test_rows_refused_by_storage_are_sent_again_not_skipped(sim):
    gateway = RefusingGateway(refusals=3)
    connector = start(gateway, meter_config(sim, "REF"))
    try:
        wait_complete(gateway, sim, "REF", timeout=30)
        assert gateway.refusals == 0
    finally:
        connector.close()


# -- event log and clock --------------------------------------------------------------------------


def test_events_with_names_and_clock_drift(sim):
    gateway = FakeGateway()
    dev = meter_config(sim, "P", profiles=[], clock=True,
                       eventLogs=[{"obis": EVENTS, "readEvery": 0.5, "names": {"70": "Remote disconnection"}}])
    connector = start(gateway, dev)
    meter = sim.meter("P")
    try:
        want = {(int(t) * 1000, code) for t, code in meter.events}
        assert gateway.wait_for(lambda: len([v for _, v in gateway.telemetry("P") if "eventCode" in v]) >= len(want))
        events = [(ts, v) for ts, v in gateway.telemetry("P") if "eventCode" in v]
        assert {(ts, v["eventCode"]) for ts, v in events} == want
        names = {v["eventCode"]: v["eventName"] for _, v in events}
        assert names[1] == "Power down" and names[2] == "Power up"
        drift = [v["clockDriftS"] for _, v in gateway.telemetry("P") if "clockDriftS" in v]
        assert drift and abs(drift[0]) < 2.5
        sim.reboot("P")  # logs power down + power up
        assert gateway.wait_for(
            lambda: len([1 for _, v in gateway.telemetry("P") if "eventCode" in v]) == len(want) + 2)
    finally:
        connector.close()


def test_clock_drift_is_reported_and_sync_clock_fixes_it(sim):
    gateway = FakeGateway()
    connector = start(gateway, meter_config(sim, "RW", low=True, profiles=[], clock={"autoSyncThresholdS": 3600}))
    try:
        sim.advance_clock("RW", 300)
        reply = device_rpc(connector, gateway, "RW", "readClock")
        assert 297 < reply["driftS"] < 303, reply
        reply = device_rpc(connector, gateway, "RW", "syncClock")
        assert reply["success"] is True and 297 < reply["driftBeforeS"] < 303 and abs(reply["driftAfterS"]) < 2, reply
    finally:
        connector.close()


def test_sync_clock_refused_names_the_object(sim):
    gateway = FakeGateway()
    connector = start(gateway, meter_config(sim, "P", profiles=[], clock=True))  # public client: read only
    try:
        reply = device_rpc(connector, gateway, "P", "syncClock")
        assert "0.0.1.0.0.255" in reply["error"] and "DENIED" in reply["error"].upper(), reply
    finally:
        connector.close()


# -- RPCs -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rw(sim, tmp_path_factory):
    gateway = FakeGateway()
    connector = start(gateway, meter_config(sim, "RW", low=True, profiles=[], attributeUpdates=[
        {"key": "relay", "obis": "0.0.96.3.10.255", "classId": 70, "method": {"true": 2, "false": 1}},
        {"key": "controlMode", "obis": "0.0.96.3.10.255", "classId": 70, "attribute": 4, "type": "enum"},
    ]))
    yield connector, gateway
    connector.close()


def test_set_then_get_back(rw):
    connector, gateway = rw
    reply = device_rpc(connector, gateway, "RW", "set",
                       {"obis": "0.0.96.3.10.255", "classId": 70, "attribute": 4, "value": 3, "type": "enum"})
    assert reply.get("success") is True, reply
    reply = device_rpc(connector, gateway, "RW", "get", "obis=0.0.96.3.10.255;classId=70;attribute=4")
    assert reply["value"] == 3, reply


def test_set_with_key_value_string(rw):
    connector, gateway = rw
    reply = device_rpc(connector, gateway, "RW", "set",
                       "obis=0.0.96.3.10.255;classId=70;attribute=4;value=1;type=enum")
    assert reply.get("success") is True, reply
    assert device_rpc(connector, gateway, "RW", "relayState")["controlMode"] == 1


@pytest.mark.parametrize("params,words", [
    ({"obis": "1.0.32.7.0.255", "attribute": 2, "value": 1, "type": "uint16"}, ["1.0.32.7.0.255", "DENIED"]),
    ({"obis": "0.0.96.99.0.255", "classId": 1, "value": 1, "type": "uint8"}, ["0.0.96.99.0.255"]),
])
def test_set_refused_by_meter_names_object_and_result(rw, params, words):
    connector, gateway = rw
    reply = device_rpc(connector, gateway, "RW", "set", params)
    assert "error" in reply, reply
    for word in words:
        assert word.upper() in reply["error"].upper(), reply


def test_get_undefined_object_names_it(rw):
    connector, gateway = rw
    reply = device_rpc(connector, gateway, "RW", "get", {"obis": "0.0.96.99.0.255", "classId": 1})
    assert "0.0.96.99.0.255" in reply["error"], reply


@pytest.mark.parametrize("method,params,fragment", [
    ("set", {"obis": "0.0.96.3.10.255", "classId": 70, "attribute": 4, "value": 1}, "params.type"),
    ("set", {"obis": "0.0.96.3.10.255", "value": 300, "type": "uint8"}, "0..255"),
    ("set", {"obis": "nope", "value": 1, "type": "uint8"}, "params.obis"),
    ("set", {"obis": "0.0.96.3.10.255", "value": 1, "type": "uint99"}, "params.type"),
    ("set", "obis", "params"),
    ("readProfile", {"obis": LOAD}, "params.from"),
    ("readProfile", {"obis": LOAD, "from": "yesterday"}, "params.from"),
    ("readProfile", {"obis": LOAD, "from": "2024-02-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"}, "after"),
    ("readProfile", {"obis": LOAD, "from": "2024-01-01T00:00:00", "to": "2024-01-02T00:00:00", "send": "yes"},
     "params.send"),
])
def test_bad_parameters_answered_at_once(rw, method, params, fragment):
    connector, gateway = rw
    reply = device_rpc(connector, gateway, "RW", method, params)
    assert fragment in reply.get("error", ""), reply


def test_relay_disconnect_reconnect_and_state(rw, sim):
    connector, gateway = rw
    reply = device_rpc(connector, gateway, "RW", "disconnect")
    assert reply["success"] is True and reply["outputState"] is False and reply["controlState"] == "disconnected"
    assert sim.meter("RW").output_state is False
    reply = device_rpc(connector, gateway, "RW", "reconnectRelay", {})
    assert reply["outputState"] is True and reply["controlState"] == "connected", reply
    assert device_rpc(connector, gateway, "RW", "relayState")["outputState"] is True


def test_relay_refused_for_a_read_only_client(sim):
    gateway = FakeGateway()
    connector = start(gateway, meter_config(sim, "P", profiles=[]))
    try:
        reply = device_rpc(connector, gateway, "P", "disconnect")
        assert "0.0.96.3.10.255" in reply["error"], reply
        assert sim.meter("P").output_state is True
    finally:
        connector.close()


def test_attribute_updates_write_and_call_methods(rw, sim):
    connector, gateway = rw
    meter = sim.meter("RW")
    connector.on_attributes_update({"device": "RW", "data": {"relay": False, "unmapped": 1}})
    assert gateway.wait_for(lambda: meter.output_state is False, 10)
    connector.on_attributes_update({"device": "RW", "data": {"relay": True, "controlMode": 2}})
    assert gateway.wait_for(lambda: meter.output_state is True and meter.control_mode == 2, 10)
    connector.on_attributes_update({"device": "RW", "data": {"relay": "maybe"}})  # logged, nothing done
    connector.on_attributes_update({"device": "Nobody", "data": {"relay": False}})
    # Updates of a meter run in order: once this one is done, the bad one above was handled too.
    connector.on_attributes_update({"device": "RW", "data": {"controlMode": 1}})
    assert gateway.wait_for(lambda: meter.control_mode == 1, 10)
    assert meter.output_state is True


def test_read_profile_rpc_returns_rows_and_sends_them(sim):
    gateway = FakeGateway()
    connector = start(gateway, meter_config(sim, "P", profiles=[{"obis": LOAD, "columns": [None, "imp", "exp"],
                                                                 "readEvery": 3600, "horizonDays": 0.01}]))
    try:
        end = int(sim.meter("P").now() // CAPTURE_PERIOD * CAPTURE_PERIOD) * 1000
        start_ms = end - 4 * CAPTURE_PERIOD * 1000
        reply = device_rpc(connector, gateway, "P", "readProfile",
                           {"obis": LOAD, "to": end, "send": True,
                            "from": dt.datetime.fromtimestamp(start_ms / 1000, dt.timezone.utc).isoformat()})
        assert [r["ts"] for r in reply["rows"]] == list(range(start_ms, end + 1, CAPTURE_PERIOD * 1000)), reply
        assert set(reply["rows"][0]["values"]) == {"imp", "exp"}
        assert reply["sent"] == 5 and reply["capturePeriod"] == CAPTURE_PERIOD
        assert gateway.wait_for(
            lambda: {ts for ts, v in gateway.telemetry("P") if "imp" in v} >= {r["ts"] for r in reply["rows"]})
        # An object the device does not configure comes back under OBIS codes.
        reply = device_rpc(connector, gateway, "P", "readProfile", {"obis": EVENTS, "from": end - 5 * 86_400_000})
        assert reply["rows"] and "0.0.96.11.0.255" in reply["rows"][0]["values"], reply
    finally:
        connector.close()


def test_read_profile_rpc_on_a_meter_rejecting_ranges(sim):
    gateway = FakeGateway()
    connector = start(gateway, meter_config(sim, "NR", profiles=[]))
    try:
        end = int(sim.meter("NR").now() // CAPTURE_PERIOD * CAPTURE_PERIOD) * 1000
        reply = device_rpc(connector, gateway, "NR", "readProfile",
                           {"obis": LOAD, "from": end - 2 * CAPTURE_PERIOD * 1000, "to": end})
        assert [r["ts"] for r in reply["rows"]] == [end - 1_800_000, end - 900_000, end], reply
    finally:
        connector.close()


def test_clock_set_automatically_when_drift_exceeds_the_threshold(sim):
    gateway = FakeGateway()
    sim.advance_clock("RST", 600)
    connector = start(gateway, meter_config(sim, "RST", low=False, profiles=[],
                                            clock={"autoSyncThresholdS": 60}))
    try:
        # Public client: the meter refuses the write; the drift is still reported, the refusal logged.
        assert gateway.wait_for(lambda: any("clockDriftS" in v for _, v in gateway.telemetry("RST")), 10)
        drift = next(v["clockDriftS"] for _, v in gateway.telemetry("RST") if "clockDriftS" in v)
        assert 597 < drift < 603
        assert connector.devices["RST"].report()["clockSyncs"] == 0
    finally:
        connector.close()
    sim.advance_clock("RST", -600)


def test_clock_auto_sync_with_a_client_allowed_to_write(sim):
    gateway = FakeGateway()
    sim.advance_clock("RW", -90)
    connector = start(gateway, meter_config(sim, "RW", low=True, profiles=[], clock={"autoSyncThresholdS": 30}))
    try:
        assert gateway.wait_for(lambda: connector.devices["RW"].report().get("clockSyncs") == 1, 10)
        assert abs(sim.meter("RW").clock_offset) < 2
    finally:
        connector.close()


# -- clock deviation sign --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lmu_sim():
    """A CET meter that writes its deviation as local minus UTC (+60), unlike gurux (-60)."""
    with Simulator([MeterSpec("LMU", auth="low", client_address=32, password=PASSWORD, profile_days=1,
                              deviation_local_minus_utc=True)]) as s:
        yield s


def lmu_config(sim, deviation: str | None) -> dict:
    dev = meter_config(sim, "LMU", low=True, clock={"driftKey": "clockDriftS"})
    if deviation is not None:
        dev["connection"]["clockDeviation"] = deviation
    return dev


def test_local_minus_utc_meter_read_with_its_convention(lmu_sim):
    """Clock, load-profile timestamps and syncClock all agree with the meter's own instants."""
    gateway = FakeGateway()
    connector = start(gateway, lmu_config(lmu_sim, "local-minus-utc"))
    try:
        wait_complete(gateway, lmu_sim, "LMU", timeout=30)  # every interval at its true UTC instant
        reply = device_rpc(connector, gateway, "LMU", "readClock")
        assert abs(reply["driftS"]) < 2.5 and reply["meterTime"].endswith("+01:00"), reply
        lmu_sim.advance_clock("LMU", 300)
        reply = device_rpc(connector, gateway, "LMU", "syncClock")
        assert reply["success"] is True and 297 < reply["driftBeforeS"] < 303, reply
        assert abs(reply["driftAfterS"]) < 2.5, reply
        assert abs(lmu_sim.meter("LMU").now() - time.time()) < 2.5  # the meter itself took the right time
    finally:
        connector.close()


def test_local_minus_utc_meter_read_the_gurux_way_is_two_offsets_off(lmu_sim):
    """Why the option exists: the default sign reads this meter 2 h (twice CET) ahead."""
    gateway = FakeGateway()
    connector = start(gateway, lmu_config(lmu_sim, None))
    try:
        reply = device_rpc(connector, gateway, "LMU", "readClock")
        assert 7197 < reply["driftS"] < 7203, reply
        assert connector.devices["LMU"].config.to_public_dict()["connection"]["clockDeviation"] == "utc-minus-local"
    finally:
        connector.close()


# -- High-GMAC: every profile block a ciphered glo-get-response ------------------------------------


def test_high_gmac_meter_profile_backfilled_once():
    spec = MeterSpec("GMAC", auth="high_gmac", profile_days=1, max_pdu=256)
    with Simulator([spec]) as gsim:
        dev = meter_config(gsim, "GMAC")
        dev["connection"].update(authentication="high_gmac", clientAddress=spec.client_address, maxPduSize=256,
                                 security={"systemTitle": "5442444c4d533031",
                                           "blockCipherKey": spec.block_cipher_key.hex(),
                                           "authenticationKey": spec.authentication_key.hex()})
        gateway = FakeGateway()
        connector = start(gateway, dev)
        try:
            want = wait_complete(gateway, gsim, "GMAC", timeout=30)
            assert len(want) >= 96
            gsim.advance_clock("GMAC", 2 * CAPTURE_PERIOD)
            wait_complete(gateway, gsim, "GMAC", timeout=30)
            assert connector.devices["GMAC"].report()["archives"][LOAD]["lastError"] is None
        finally:
            connector.close()
