"""Meters on serial lines through the real gateway: pty-backed lines at 9600 baud, paced like a wire.

One simulator, one broker, one gateway for the module:
  Bus 1..3   three HDLC meters on one line (phys 17..19), their own device names
  Optical    a mode E meter behind an optical probe (sign-on at 300 baud 7E1, then 9600 8N1)
  Meter T    a WRAPPER meter on TCP: must not notice anything that happens on the serial lines
  Nowhere    a port path that does not exist
  Taken      a line another program holds exclusively
  Mute       a mode E line whose meter does not answer the sign-on
The line of Bus 1..3 is unplugged mid-run and comes back (test_line_unplugged_and_back).

A Linux pty refuses 7E1 (EINVAL): the gateway runs with the rig's devtools/pty_7e1 patch, which
applies it as 8N1 on ptys only and says so on stderr; the production code asks 7E1 unchanged.
"""
from __future__ import annotations

import os
import time

import pytest
import serial

from e2e_support import stop_gateway
from tb_dlms.devtools import pty_7e1
from tb_dlms.devtools.gateway_process import GatewayProcess
from tb_dlms.simulator import MeterSpec, Simulator

POLL_PERIOD_S = 2
TIMESERIES = {"voltageL1": "1.0.32.7.0.255", "currentL1": "1.0.31.7.0.255", "energyImport": "1.0.1.8.0.255"}
BUS = ["Bus 1", "Bus 2", "Bus 3"]
GOOD = BUS + ["Optical", "Meter T"]
BROKEN = ["Nowhere", "Taken", "Mute"]


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    d = tmp_path_factory.mktemp("ttys")
    return {name: str(d / f"tty{name}") for name in ("bus", "optical", "taken", "mute")} | {
        "nowhere": str(d / "no-such-dir" / "ttyUSB9")}


def _specs(lines) -> list[MeterSpec]:
    specs = [MeterSpec(name, interface="hdlc", serial_line="bus", serial_path=lines["bus"], baudrate=9600,
                       physical_address=17 + i, address_size=2, delay=0.005) for i, name in enumerate(BUS)]
    specs += [
        MeterSpec("Optical", interface="hdlc", serial_line="optical", serial_path=lines["optical"], mode_e=True,
                  mode_e_identification="/SIM5\\2OPTICAL-1", delay=0.005),
        MeterSpec("Meter T", interface="wrapper"),
        MeterSpec("Taken", interface="hdlc", serial_line="taken", serial_path=lines["taken"]),
        MeterSpec("Mute", interface="hdlc", serial_line="mute", serial_path=lines["mute"], mode_e=True,
                  mode_e_silent=True),
    ]
    return specs


def _config(sim: Simulator, lines) -> dict:
    def device(name, connection):
        return {"deviceName": name, "deviceType": "serial-meter", "connection": connection,
                "timeseries": [{"key": k, "obis": o} for k, o in TIMESERIES.items()]}

    devices = [device(name, {"serial": {"port": lines["bus"], "baudrate": 9600},
                             "serverAddress": {"logical": 1, "physical": 17 + i, "size": 2}})
               for i, name in enumerate(BUS)]
    devices += [
        device("Optical", {"serial": {"port": lines["optical"], "baudrate": 9600, "modeE": True,
                                      "switchDelayMs": 50}}),
        device("Meter T", {"host": "127.0.0.1", "port": sim.port_of("Meter T"), "interface": "wrapper"}),
        device("Nowhere", {"serial": {"port": lines["nowhere"]}}),
        device("Taken", {"serial": {"port": lines["taken"]}}),
        device("Mute", {"serial": {"port": lines["mute"], "modeE": True}}),
    ]
    return {"name": "DLMS Connector", "id": "e2e-serial", "logLevel": "DEBUG", "pollPeriod": POLL_PERIOD_S,
            "defaults": {"timeoutMs": 1500, "retries": 1, "connectTimeoutMs": 3000},
            "breaker": {"failureThreshold": 3, "cooldownS": 1, "maxCooldownS": 2},
            "devices": devices}


@pytest.fixture(scope="module")
def simulator(lines):
    sim = Simulator(_specs(lines)).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def holder(simulator, lines):
    """Another program that has the "taken" line open exclusively."""
    port = serial.Serial(lines["taken"], 9600, exclusive=True)
    yield port
    port.close()


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, simulator, holder, lines, tmp_path_factory):
    work = tmp_path_factory.mktemp("gateway")
    site = pty_7e1.sitecustomize_dir(work)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    gw = GatewayProcess(broker.port, connector_config=_config(simulator, lines), workdir=work,
                        extra_env={"PYTHONPATH": path})
    gw.start()
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="module")
def all_polled(gateway, fake_tb):
    try:
        for name in GOOD:
            fake_tb.wait_telemetry(name, TIMESERIES, timeout=60)
    except TimeoutError:
        gateway.assert_running()
        raise
    return True


def _last_error(fake_tb, name: str, contains: str, timeout: float = 30) -> str:
    def found():
        state = fake_tb.latest(name)
        err = str((state.attributes if state else {}).get("lastError") or "")
        return err if contains in err else None
    return fake_tb.wait_for(found, timeout, f"lastError of {name} containing {contains!r}")


def _fresh(fake_tb, name: str, since: float, timeout: float) -> None:
    fake_tb.wait_for(lambda: [p for p in fake_tb.telemetry_of(name) if p.ts and p.ts >= since * 1000] or None,
                     timeout, f"telemetry of {name} read after t={since:.1f}")


def test_three_meters_on_one_line_under_their_own_names(all_polled, fake_tb, simulator):
    for name in BUS:
        assert fake_tb.wait_connect(name, 10)["type"] == "serial-meter"
        assert 200 < fake_tb.latest(name).telemetry["voltageL1"] < 260
    # All three went over one line, told apart by address: each meter answered its own requests.
    for name in BUS:
        assert simulator.meter(name).replies > 0, name
    assert simulator.line("bus").bytes_out > 0


def test_mode_e_meter_publishes_its_identification(all_polled, fake_tb, gateway):
    attrs = fake_tb.wait_attributes("Optical", ["modeEIdentification"], timeout=30)
    assert attrs["modeEIdentification"] == "/SIM5\\2OPTICAL-1"
    # The production link asked for 7E1; only the rig's pty made it 8N1.
    assert pty_7e1.MARK in gateway.output_tail(200_000) or pty_7e1.MARK in gateway.log_text()


@pytest.mark.parametrize("name, says", [
    ("Nowhere", "does not exist"),
    ("Taken", "in use by another program"),
    ("Mute", "no IEC 62056-21 identification"),
])
def test_broken_ports_are_clear_errors_and_others_run(all_polled, fake_tb, gateway, lines, name, says):
    path = lines[name.lower()]
    err = _last_error(fake_tb, name, says)
    assert path in err, err
    log = gateway.log_text()
    assert f"{name}: poll failed" in log and path in log
    assert not fake_tb.telemetry_of(name)
    gateway.assert_running()


def test_line_unplugged_and_back(all_polled, fake_tb, simulator, lines):
    unplugged = time.time()
    simulator.unplug("bus")
    for name in BUS:
        _last_error(fake_tb, name, lines["bus"], timeout=30)
    # The TCP meter and the optical line did not notice.
    _fresh(fake_tb, "Meter T", time.time(), POLL_PERIOD_S * 3 + 10)
    _fresh(fake_tb, "Optical", time.time(), POLL_PERIOD_S * 3 + 15)
    assert all(p.ts < unplugged * 1000 + POLL_PERIOD_S * 1000 + 5000 for p in fake_tb.telemetry_of("Bus 1")), \
        "Bus 1 kept sending telemetry with its line unplugged"
    back = time.time()
    simulator.replug("bus")
    for name in BUS:
        _fresh(fake_tb, name, back, 45)
