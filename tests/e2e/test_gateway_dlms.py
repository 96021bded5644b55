"""DLMS connector end to end: simulated meters -> real gateway (subprocess) -> Mosquitto -> fake ThingsBoard.

One simulator (in this process, so the tests can ask it what its registers hold), one gateway and
one broker for the whole module. Meters:
  Meter W    WRAPPER, no authentication (public client 16)
  Meter L    WRAPPER, Low authentication (client 32, password)
  Meter H    HDLC, Low authentication, logical 1 / physical 17, 2-byte addressing
  Meter Bad  WRAPPER, Low authentication, the connector has the WRONG password
"""
from __future__ import annotations

import json
import time

import pytest

from e2e_support import stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess

# The gateway loads this class by name: a missing module or a rename fails here, not as a skip.
from tb_dlms.gateway.connector import DLMSConnector  # noqa: E402,F401

from tb_dlms.simulator import MeterSpec, Simulator  # noqa: E402
from tb_dlms.simulator.objects import REGISTER_BY_LN  # noqa: E402

PASSWORD = "12345678"
POLL_PERIOD_S = 2
GOOD = {"Meter W": "dlms-meter", "Meter L": "dlms-meter", "Meter H": "dlms-hdlc"}
BAD = "Meter Bad"
TIMESERIES = {
    "voltageL1": "1.0.32.7.0.255",
    "voltageL2": "1.0.52.7.0.255",
    "voltageL3": "1.0.72.7.0.255",
    "currentL1": "1.0.31.7.0.255",
    "currentL2": "1.0.51.7.0.255",
    "currentL3": "1.0.71.7.0.255",
    "frequency": "1.0.14.7.0.255",
    "activePowerImport": "1.0.1.7.0.255",
    "energyImport": "1.0.1.8.0.255",
    "energyExport": "1.0.2.8.0.255",
}
ATTRIBUTES = [
    {"key": "serialNumber", "obis": "0.0.96.1.0.255", "classId": 1},
    {"key": "firmwareVersion", "obis": "1.0.0.2.0.255", "classId": 1},
]


def _specs() -> list[MeterSpec]:
    return [
        MeterSpec("Meter W", interface="wrapper", auth="none"),
        MeterSpec("Meter L", interface="wrapper", auth="low", client_address=32, password=PASSWORD),
        MeterSpec("Meter H", interface="hdlc", auth="low", client_address=32, password=PASSWORD,
                  logical_address=1, physical_address=17, address_size=2),
        MeterSpec(BAD, interface="wrapper", auth="low", client_address=32, password=PASSWORD),
    ]


def _connector_config(sim: Simulator) -> dict:
    def device(name, dtype, connection):
        return {
            "deviceName": name,
            "deviceType": dtype,
            "connection": {"host": "127.0.0.1", "port": sim.port_of(name), **connection},
            "timeseries": [{"key": k, "obis": o} for k, o in TIMESERIES.items()],
            "attributes": ATTRIBUTES,
        }

    return {
        "name": "DLMS Connector",
        "id": "e2e-dlms-connector",
        "logLevel": "DEBUG",
        "pollPeriod": POLL_PERIOD_S,
        "defaults": {"timeoutMs": 2000, "retries": 1, "connectTimeoutMs": 2000},
        "devices": [
            device("Meter W", GOOD["Meter W"], {"interface": "wrapper", "authentication": "none",
                                                "clientAddress": 16, "serverAddress": {"logical": 1}}),
            device("Meter L", GOOD["Meter L"], {"interface": "wrapper", "authentication": "low",
                                                "clientAddress": 32, "password": PASSWORD,
                                                "serverAddress": {"logical": 1}}),
            device("Meter H", GOOD["Meter H"], {"interface": "hdlc", "authentication": "low",
                                                "clientAddress": 32, "password": PASSWORD,
                                                "serverAddress": {"logical": 1, "physical": 17, "size": 2},
                                                "hdlc": {"maxInfoField": 128, "windowSize": 1}}),
            device(BAD, "dlms-meter", {"interface": "wrapper", "authentication": "low", "clientAddress": 32,
                                       "password": "wrong-password", "serverAddress": {"logical": 1}}),
        ],
    }


@pytest.fixture(scope="module")
def simulator():
    sim = Simulator(_specs()).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, simulator, tmp_path_factory):
    gw = GatewayProcess(broker.port, connector_config=_connector_config(simulator),
                        workdir=tmp_path_factory.mktemp("gateway")).start()
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="module")
def all_connected(gateway, fake_tb):
    """Every good meter has sent its first complete telemetry."""
    try:
        for name in GOOD:
            fake_tb.wait_telemetry(name, TIMESERIES, timeout=45)
    except TimeoutError:
        gateway.assert_running()
        raise
    return True


def _expected_range(sim: Simulator, meter: str, obis: str, t: float, window: float = 6.0) -> tuple[float, float]:
    """Min/max the register held within ``window`` seconds of ``t`` (wall time), widened by one digit."""
    m = sim.meter(meter)
    reg = REGISTER_BY_LN[obis]
    samples = [reg.quantity(m.load, t + m.clock_offset + dt / 4) for dt in range(int(-window * 4), int(window * 4) + 1)]
    digit = 10 ** reg.scaler
    return min(samples) - digit, max(samples) + digit


def _connector_stats(fake_tb) -> dict:
    reply = fake_tb.connector_rpc("dlms_getStats", {}, timeout=20)
    assert isinstance(reply, dict) and "meters" in reply, reply
    return reply


# -- tests ----------------------------------------------------------------------------------------


def test_connect_for_each_meter_with_its_type(all_connected, fake_tb):
    for name, dtype in GOOD.items():
        assert fake_tb.wait_connect(name, 10)["type"] == dtype


def test_telemetry_scaled_values_and_timestamps(all_connected, fake_tb, simulator):
    for name in GOOD:
        points = fake_tb.telemetry_of(name)
        assert points, name
        for point in points[-2:]:
            assert point.ts is not None, f"{name}: telemetry without ts"
            t = point.ts / 1000
            # Timestamp of the poll: at most one poll (plus transport) before it reached us.
            assert point.received - (POLL_PERIOD_S + 10) <= t <= point.received + 1, (name, point)
            for key, value in point.values.items():
                if key not in TIMESERIES:
                    continue
                lo, hi = _expected_range(simulator, name, TIMESERIES[key], t)
                assert isinstance(value, (int, float)), (name, key, value)
                assert lo <= value <= hi, f"{name}.{key}={value} not in simulator range [{lo}, {hi}] at ts {t}"


def test_voltage_is_scaled_not_raw(all_connected, fake_tb):
    state = fake_tb.latest("Meter W")
    for key in ("voltageL1", "voltageL2", "voltageL3"):
        assert 200 < state.telemetry[key] < 260, (key, state.telemetry[key])
    assert 49 < state.telemetry["frequency"] < 51


def test_attributes_published(all_connected, fake_tb, simulator):
    for name in GOOD:
        attrs = fake_tb.wait_attributes(name, ["serialNumber", "firmwareVersion"], timeout=30)
        spec = simulator.meter(name).spec
        assert str(attrs["serialNumber"]) == str(spec.serial_number)
        assert str(attrs["firmwareVersion"]) == spec.firmware


def test_units_published_once_per_association(all_connected, fake_tb):
    for name in GOOD:
        units = fake_tb.wait_attributes(name, ["units"], timeout=30)["units"]
        if isinstance(units, str):
            units = json.loads(units)
        assert units["voltageL1"] == "V" and units["currentL1"] == "A"
        assert units["energyImport"] == "Wh" and units["frequency"] == "Hz"


def test_device_rpc_get_stats(all_connected, fake_tb):
    reply = fake_tb.device_rpc("Meter L", "getStats", {}, timeout=20)
    assert isinstance(reply, dict) and "error" not in reply, reply
    assert reply["device"] == "Meter L"
    assert reply["pollsOk"] >= 1
    assert reply["connected"] is True


def test_device_rpc_reconnect_then_polling_resumes(all_connected, fake_tb):
    before = fake_tb.device_rpc("Meter W", "getStats", {}, timeout=20)
    reply = fake_tb.device_rpc("Meter W", "reconnect", {}, timeout=20)
    assert isinstance(reply, dict) and reply.get("success") is True, reply
    since_ms = time.time() * 1000
    # A reading taken after the reply: readings already in the gateway's pipeline do not count.
    fake_tb.wait_for(lambda: [p for p in fake_tb.telemetry_of("Meter W") if p.ts and p.ts >= since_ms] or None,
                     POLL_PERIOD_S * 3 + 15, "a reading of Meter W taken after the reconnect")
    after = fake_tb.device_rpc("Meter W", "getStats", {}, timeout=20)
    assert after["associations"] > before["associations"], (before, after)


def test_device_rpc_get_register(all_connected, fake_tb):
    reply = fake_tb.device_rpc("Meter H", "get", {"obis": "1.0.32.7.0.255"}, timeout=20)
    assert isinstance(reply, dict) and "error" not in reply, reply
    assert 200 < float(reply["value"]) < 260


def test_connector_rpc_get_stats(all_connected, fake_tb):
    reply = _connector_stats(fake_tb)
    assert set(reply["meters"]) == set(GOOD) | {BAD}
    assert reply["count"] == 4


@pytest.mark.parametrize("method,params", [
    ("get", {"obis": "not-an-obis"}),
    ("get", {}),
    ("get", {"obis": "1.0.32.7.0.255", "attribute": "two"}),
    ("noSuchMethod", {}),
])
def test_device_rpc_bad_request_answered_with_error(all_connected, fake_tb, method, params):
    reply = fake_tb.device_rpc("Meter W", method, params, timeout=20)
    assert isinstance(reply, dict) and reply.get("error"), reply


@pytest.mark.parametrize("method,params", [
    ("dlms_getStats", {"device": 42}),
    ("dlms_getStats", {"device": "No Such Meter"}),
    ("dlms_noSuchMethod", {}),
])
def test_connector_rpc_bad_request_answered_with_error(all_connected, fake_tb, method, params):
    reply = fake_tb.connector_rpc(method, params, timeout=20)
    assert isinstance(reply, dict) and (reply.get("error") or reply.get("success") is False), reply


def test_wrong_password_reported_while_others_keep_reporting(all_connected, fake_tb):
    # The bad meter fails at every poll; by the time each good meter reported twice more it has
    # failed at least once. Pace the stats queries on telemetry arrivals (events), not sleeps.
    deadline = time.monotonic() + 45
    while True:
        since = time.time()
        for name in GOOD:
            fake_tb.wait_telemetry(name, TIMESERIES, timeout=POLL_PERIOD_S * 3 + 15, since=since)
        bad = _connector_stats(fake_tb)["meters"][BAD]
        if bad["pollsFailed"] >= 1 and bad["lastError"]:
            break
        assert time.monotonic() < deadline, f"{BAD} not reported as failing: {json.dumps(bad)}"
    assert bad["pollsOk"] == 0, bad
    assert bad["connected"] is False, bad
    assert not any(t.device == BAD for t in fake_tb.telemetry), "telemetry from a meter with a wrong password"
    for name in GOOD:
        good = _connector_stats(fake_tb)["meters"][name]
        assert good["pollsOk"] >= 1 and good["connected"] is True, good


def test_gateway_log_has_no_tracebacks(all_connected, gateway):
    text = gateway.log_text()
    assert "Traceback (most recent call last)" not in text, text[-4000:]
