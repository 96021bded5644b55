"""The ThingsBoard side (issue 11, item 6): test_config.py tells a reachable ThingsBoard from a
plain broker, a refused token and a wrong port; the launcher logs ONE clear warning when the
platform never answers the gateway's getSessionLimits request (the gateway then buffers all).

Real Mosquitto (anonymous, and with password auth for the refused token), the fake ThingsBoard,
the real gateway process and a simulated meter over TCP.
"""
from __future__ import annotations

import json
import shutil
import time

import pytest

from e2e_support import REPO, stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess, wait_until
from tb_dlms.devtools.mosquitto import MosquittoBroker, free_port
from tb_dlms.simulator import MeterSpec, Simulator
from tb_dlms.tools import check

WARNING = "Meter readings are being BUFFERED"
#: The launcher's wait for the answer, shortened here (default 10 s).
WAIT_S = 2


@pytest.fixture(scope="module")
def meter():
    with Simulator([MeterSpec("open")]) as sim:
        yield sim


def connector(sim: Simulator) -> dict:
    return {"name": "DLMS Connector", "pollPeriod": 2, "devices": [{
        "deviceName": "Meter 1", "deviceType": "dlms-meter",
        "connection": {"host": "127.0.0.1", "port": sim.port_of("open")},
        "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}]}]}


@pytest.fixture()
def config_dir(meter, tmp_path, monkeypatch):
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(REPO / "config" / "tb_gateway.yaml", config)
    (config / "dlms_connector.json").write_text(json.dumps(connector(meter)))
    monkeypatch.delenv("TB_DLMS_NO_PLATFORM_CHECK", raising=False)
    monkeypatch.setenv("TB_GATEWAY_HOST", "127.0.0.1")
    monkeypatch.setenv("TB_GATEWAY_TOKEN", "gateway-token")
    return config


def run_check(capsys, config) -> tuple[int, dict]:
    code = check.main(["--config-dir", str(config), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_thingsboard_answers(config_dir, broker, fake_tb, capsys, monkeypatch):
    monkeypatch.setenv("TB_GATEWAY_PORT", str(broker.port))
    code, report = run_check(capsys, config_dir)
    assert report["thingsboard"]["status"] == "thingsboard", report["thingsboard"]
    assert code == check.EXIT_OK and report["meters"][0]["status"] == "ok"


def test_a_plain_broker_is_not_thingsboard(config_dir, mosquitto_path, capsys, monkeypatch, tmp_path):
    with MosquittoBroker(workdir=tmp_path / "plain") as plain:
        monkeypatch.setenv("TB_GATEWAY_PORT", str(plain.port))
        code, report = run_check(capsys, config_dir)
    assert code == check.EXIT_PLATFORM
    assert report["thingsboard"]["status"] == "not_thingsboard"
    assert "getSessionLimits" in report["thingsboard"]["message"]
    assert report["meters"][0]["status"] == "ok", "meters are probed all the same"


def test_a_wrong_token_is_refused(config_dir, mosquitto_path, capsys, monkeypatch, tmp_path):
    with MosquittoBroker(workdir=tmp_path / "auth", users={"the-right-token": "x"}) as guarded:
        monkeypatch.setenv("TB_GATEWAY_PORT", str(guarded.port))
        code, report = run_check(capsys, config_dir)
    assert code == check.EXIT_PLATFORM
    assert report["thingsboard"]["status"] == "refused"
    assert "TB_GATEWAY_TOKEN" in report["thingsboard"]["message"]
    assert "gateway-token" not in json.dumps(report), "the token is never printed"


def test_a_wrong_port_is_unreachable(config_dir, capsys, monkeypatch):
    port = free_port()
    monkeypatch.setenv("TB_GATEWAY_PORT", str(port))
    code, report = run_check(capsys, config_dir)
    assert code == check.EXIT_PLATFORM
    assert report["thingsboard"]["status"] == "unreachable"
    assert f"127.0.0.1:{port}" in report["thingsboard"]["message"]


def test_text_output_says_what_is_wrong(config_dir, mosquitto_path, capsys, monkeypatch, tmp_path):
    with MosquittoBroker(workdir=tmp_path / "plain") as plain:
        monkeypatch.setenv("TB_GATEWAY_PORT", str(plain.port))
        assert check.main(["--config-dir", str(config_dir)]) == check.EXIT_PLATFORM
    out = capsys.readouterr().out
    assert f"ThingsBoard 127.0.0.1:{plain.port}: NOT THINGSBOARD" in out and "buffer every reading" in out


def _gateway(port: int, meter: Simulator) -> GatewayProcess:
    return GatewayProcess(port, connector(meter), extra_env={"TB_DLMS_SESSION_LIMITS_WAIT_S": str(WAIT_S)})


def test_launcher_warns_once_when_only_a_plain_broker_answers(meter, mosquitto_path, tmp_path):
    with MosquittoBroker(workdir=tmp_path / "plain") as plain:
        gw = _gateway(plain.port, meter).start()
        try:
            wait_until(lambda: WARNING in gw.log_text("service"), 90, "the launcher's platform warning")
            gw.assert_running()
            text = gw.log_text("service")
            assert text.count(WARNING) == 1
            assert "getSessionLimits" in text and "127.0.0.1" in text
        finally:
            stop_gateway(gw)
            gw.close()


def test_no_warning_when_thingsboard_answers(meter, broker, fake_tb):
    gw = _gateway(broker.port, meter).start()
    try:
        started = time.monotonic()
        fake_tb.wait_telemetry("Meter 1", {"voltageL1"}, timeout=90)
        # The watch fires WAIT_S after the request; give it that long (plus margin) to stay quiet.
        wait_until(lambda: time.monotonic() - started > WAIT_S + 3, WAIT_S + 10, "the watch's deadline")
        assert WARNING not in gw.log_text()
    finally:
        stop_gateway(gw)
        gw.close()


def test_docs_name_the_log_file_the_connector_writes(meter, broker, fake_tb):
    """Issue 11, item 7: the gateway names the connector's log after the connector."""
    gw = _gateway(broker.port, meter).start()
    try:
        fake_tb.wait_telemetry("Meter 1", {"voltageL1"}, timeout=90)
        written = wait_until(lambda: [p.name for p in gw.log_files() if p.stat().st_size and "connector" in p.name],
                             30, "a non-empty connector log")
    finally:
        stop_gateway(gw)
        gw.close()
    assert written == ["dlms_connector_connector.log"]
    for doc in ("README.md", "QUICKSTART.md", "docs/troubleshooting.md"):
        text = (REPO / doc).read_text()
        assert "logs/dlms_connector_connector.log" in text
        assert "(`logs/connector.log` and" not in text and "connector log (`connector.log`)" not in text
