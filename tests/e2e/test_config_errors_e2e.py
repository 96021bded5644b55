"""Broken connector files through the real gateway: it and ``test_config.py`` reach the same verdict.

One gateway, four DLMS connectors, each with its own file:
  DLMS Main   Meter A and Meter B, plus Meter Twin (Meter A's host, port, client and server address)
              and a device with a 300-character name: the two bad devices are skipped, A and B poll
  DLMS NaN    ``"pollPeriod": NaN`` and "logLevel": the gateway's simplejson refuses the file and hands
              the connector its raw text (which used to crash the constructor on ``'str'.get``)
  DLMS Comma  a trailing comma and no "logLevel": the gateway fails before the constructor, with only
              ``'str' object has no attribute 'keys'``; the launcher names the file and the place
  DLMS BOM    a UTF-8 byte order mark: the gateway runs it (Meter C polls), so the check accepts it
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from e2e_support import REPO, stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess
from tb_dlms.simulator import MeterSpec, Simulator

A, B, C, N = "Meter A", "Meter B", "Meter C", "Meter N"
LONG_NAME = "L" * 300
FILES = {"DLMS Main": "main.json", "DLMS NaN": "nan.json", "DLMS Comma": "comma.json", "DLMS BOM": "bom.json"}


def _device(sim: Simulator, name: str, port_of: str | None = None, **extra) -> dict:
    return {"deviceName": name, "pollPeriod": 1,
            "connection": {"host": "127.0.0.1", "port": sim.port_of(port_of or name)},
            "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}], **extra}


def _write_files(sim: Simulator, config_dir) -> None:
    main = {"id": "e2e-main", "logLevel": "INFO",
            "defaults": {"timeoutMs": 1000, "retries": 1, "connectTimeoutMs": 1000},
            "devices": [_device(sim, A), _device(sim, B), _device(sim, "Meter Twin", port_of=A),
                        _device(sim, LONG_NAME, port_of=B)]}
    (config_dir / FILES["DLMS Main"]).write_text(json.dumps(main, indent=2))
    nan = json.dumps({"id": "e2e-nan", "logLevel": "INFO", "devices": [_device(sim, N)]}, indent=2)
    (config_dir / FILES["DLMS NaN"]).write_text(nan.replace('"pollPeriod": 1', '"pollPeriod": NaN'))
    comma = json.dumps({"id": "e2e-comma", "devices": [_device(sim, N)]}, indent=2)
    (config_dir / FILES["DLMS Comma"]).write_text(comma[:-2] + ",\n}")
    bom = {"id": "e2e-bom", "logLevel": "INFO", "devices": [_device(sim, C)]}
    (config_dir / FILES["DLMS BOM"]).write_text("\ufeff" + json.dumps(bom, indent=2), encoding="utf-8")


@pytest.fixture(scope="module")
def simulator():
    sim = Simulator([MeterSpec(A), MeterSpec(B), MeterSpec(C), MeterSpec(N)]).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, simulator, tmp_path_factory):
    connectors = [{"type": "dlms", "name": name, "configuration": file, "class": "DLMSConnector"}
                  for name, file in FILES.items()]
    gw = GatewayProcess(broker.port, connectors=connectors, workdir=tmp_path_factory.mktemp("gateway-badjson"))
    _write_files(simulator, gw.config_dir)
    gw.start()
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="module")
def polled(gateway, fake_tb):
    """Meters A, B (DLMS Main) and C (the BOM file) have sent telemetry, and again after that."""
    try:
        for name in (A, B, C):
            fake_tb.wait_telemetry(name, ("voltageL1",), timeout=45)
        for name in (A, B, C):
            first = fake_tb.telemetry_of(name)[0].received
            fake_tb.wait_telemetry(name, ("voltageL1",), timeout=30, since=first + 0.5)
    except TimeoutError:
        gateway.assert_running()
        raise
    return True


@pytest.fixture(scope="module")
def check_report(gateway, polled):
    """``test_config.py --json`` on the very config dir the gateway runs from."""
    proc = subprocess.run([sys.executable, "test_config.py", "--config-dir", str(gateway.config_dir), "--no-probe",
                           "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    return proc.returncode, {c["name"]: c for c in json.loads(proc.stdout)["connectors"]}


def _texts(report: dict) -> list[str]:
    return [e["text"] for e in report["errors"]]


def test_bad_devices_are_skipped_and_named_while_the_good_meters_poll(gateway, polled, simulator, check_report):
    log = gateway.log_text()
    port_a = simulator.port_of(A)
    twin = (f'devices[2] "Meter Twin": connection.serverAddress WRAPPER client address 16 with server address 1 '
            f'on 127.0.0.1:{port_a} is already used by devices[0] "Meter A"')
    long_name = f'devices[3] "{"L" * 40}...": deviceName must be at most 255 characters'
    assert twin in log and long_name in log
    code, connectors = check_report
    main = connectors["DLMS Main"]
    assert main["devices"] == 2 and len(main["errors"]) == 2
    assert _texts(main)[0].startswith(twin) and _texts(main)[1].startswith(long_name)
    for text in _texts(main):  # the gateway logged what the check says, word for word
        assert f"Configuration: main.json: {text}" in log


def test_nan_file_is_named_with_line_and_field_and_runs_no_meter(gateway, polled, simulator, check_report):
    log = gateway.log_text()
    _, connectors = check_report
    [error] = _texts(connectors["DLMS NaN"])
    assert error.startswith("nan.json: not valid JSON at line ")
    assert 'NaN is not a JSON number (at devices[0] "Meter N": pollPeriod)' in error
    assert "the gateway cannot parse this file and starts none of its meters" in error
    assert f"Configuration: {error}" in log  # from the connector's constructor
    assert "'str' object has no attribute 'get'" not in log
    assert connectors["DLMS NaN"]["devices"] == 0
    assert simulator.meter(N).connections == 0, "a meter of an unparsable file was polled"


def test_trailing_comma_is_named_even_where_the_gateway_never_builds_the_connector(gateway, polled, check_report):
    log = gateway.log_text()
    _, connectors = check_report
    [error] = _texts(connectors["DLMS Comma"])
    assert error.startswith("comma.json: not valid JSON at line ") and "Illegal trailing comma" in error
    assert f"connector 'DLMS Comma': {error}" in log  # from the launcher


def test_a_bom_file_runs_in_the_gateway_and_passes_the_check(gateway, polled, check_report, fake_tb):
    code, connectors = check_report
    assert connectors["DLMS BOM"]["ok"] and connectors["DLMS BOM"]["devices"] == 1
    assert fake_tb.telemetry_of(C)
    assert code == 1  # the other files are invalid
