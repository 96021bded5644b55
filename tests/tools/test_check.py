"""test_config.py against simulated meters: table, diagnoses, exit codes, JSON shape."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tools_support import REPO, device, make_config_dir, sim_device
from tb_dlms.tools import check


def run_check(capsys, *args: str) -> tuple[int, str]:
    code = check.main(list(args))
    return code, capsys.readouterr().out


def test_valid_config_prints_a_table_and_exits_0(sim, tmp_path, token, capsys):
    config = make_config_dir(tmp_path, [
        sim_device(sim, "open", "Meter 1"), sim_device(sim, "locked", "Meter 2"), sim_device(sim, "bus-a", "Meter 3"),
    ])
    code, out = run_check(capsys, "--config-dir", str(config))
    assert code == 0, out
    assert "\033[" not in out, "no colour when not on a terminal"
    assert "key" in out and "OBIS" in out and "scaler" in out
    assert "voltageL1" in out and "1.0.32.7.0.255" in out and " V " in out
    assert out.count(" OK") == 3
    assert "round trip" in out and "3 meter(s): 3 ok, 0 partial, 0 failed; exit code 0" in out


def test_wrong_password_is_diagnosed(sim, tmp_path, token, capsys):
    config = make_config_dir(tmp_path, [
        sim_device(sim, "open", "Meter 1"),
        sim_device(sim, "locked", "Locked", password="wrong-one"),
    ])
    code, out = run_check(capsys, "--config-dir", str(config))
    assert code == check.EXIT_METER
    assert "FAILED" in out and "password or keys" in out
    assert "wrong-one" not in out, "secrets never printed"


def test_wrong_server_address_is_diagnosed(sim, tmp_path, token, capsys):
    config = make_config_dir(tmp_path, [
        sim_device(sim, "open", "Wrapper", serverAddress=7),
        sim_device(sim, "bus-a", "Bus", serverAddress={"logical": 1, "physical": 99, "size": 4}),
    ])
    code, out = run_check(capsys, "--config-dir", str(config), "--json")
    assert code == check.EXIT_METER
    meters = {m["device"]: m for m in json.loads(out)["meters"]}
    assert meters["Wrapper"]["diagnosis"]["kind"] == "no_aare"
    assert meters["Bus"]["diagnosis"]["kind"] == "no_ua"
    for m in meters.values():
        assert "address" in m["diagnosis"]["hint"]


def test_refused_connection_is_diagnosed(tmp_path, token, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = make_config_dir(tmp_path, [device("Gone", port)])
    code, out = run_check(capsys, "--config-dir", str(config))
    assert code == check.EXIT_METER
    assert "refused" in out and "firewall" in out


def test_unreadable_point_is_partial(sim, tmp_path, token, capsys):
    d = sim_device(sim, "open", "Meter 1")
    d["timeseries"] = d["timeseries"] + [{"key": "nothing", "obis": "1.0.99.99.0.255"}]
    config = make_config_dir(tmp_path, [d])
    code, out = run_check(capsys, "--config-dir", str(config))
    assert code == check.EXIT_POINTS
    assert "PARTIAL" in out and "nothing" in out


def test_invalid_config_exits_1_naming_device_and_field(sim, tmp_path, token, capsys):
    config = make_config_dir(tmp_path, [sim_device(sim, "open", "Meter 1"),
                                        device("Typo", 70000)])
    code, out = run_check(capsys, "--config-dir", str(config))
    assert code == check.EXIT_CONFIG
    assert 'devices[1] "Typo": connection.port' in out
    assert "Meter 1" in out and "OK" in out, "valid meters are still probed"


def test_placeholder_token_is_a_config_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TB_GATEWAY_TOKEN", raising=False)
    config = make_config_dir(tmp_path, [device("Meter 1", 4059)])
    code, out = run_check(capsys, "--config-dir", str(config), "--no-probe")
    assert code == check.EXIT_CONFIG and "TB_GATEWAY_TOKEN" in out


def test_json_shape(sim, tmp_path, token, capsys):
    config = make_config_dir(tmp_path, [sim_device(sim, "open", "Meter 1")])
    code, out = run_check(capsys, "--config-dir", str(config), "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["exitCode"] == 0
    assert data["gatewayConfig"]["ok"] and data["gatewayConfig"]["file"].endswith("tb_gateway.yaml")
    assert data["connectors"][0]["devices"] == 1 and data["connectors"][0]["errors"] == []
    meter = data["meters"][0]
    assert set(meter) >= {"device", "status", "ok", "endpoint", "interface", "addresses", "authentication", "error",
                          "diagnosis", "connectMs", "readMs", "elapsedMs", "rttMs", "roundTrips", "bytesSent",
                          "bytesReceived", "readings"}
    assert meter["roundTrips"] >= 2 and meter["rttMs"] > 0
    reading = meter["readings"][0]
    assert set(reading) == {"key", "section", "obis", "classId", "attribute", "value", "unit", "scaler", "error"}
    assert reading["unit"] == "V" and isinstance(reading["value"], float)
    assert data["summary"] == {"ok": 1, "partial": 0, "failed": 0}


def test_colour_on_request_and_no_color(sim, tmp_path, token, capsys, monkeypatch):
    config = make_config_dir(tmp_path, [sim_device(sim, "open", "Meter 1")])
    _, out = run_check(capsys, "--config-dir", str(config), "--color", "always")
    assert "\033[32m" in out
    monkeypatch.setenv("NO_COLOR", "1")
    from tb_dlms.tools.render import want_colour

    class Tty:
        def isatty(self):
            return True

    assert want_colour(Tty()) is False


def test_script_runs_from_the_checkout(sim, tmp_path):
    """``python test_config.py`` with the checkout's connectors/ on the path, no install needed."""
    config = make_config_dir(tmp_path, [sim_device(sim, "open", "Meter 1")])
    env = {**os.environ, "TB_GATEWAY_TOKEN": "t", "PYTHONPATH": "", "TB_DLMS_NO_PLATFORM_CHECK": "1"}
    proc = subprocess.run([sys.executable, "test_config.py", "--config-dir", str(config)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "voltageL1" in proc.stdout


def test_usage_error_exit_code(capsys):
    with pytest.raises(SystemExit) as exc:
        check.main(["--parallel", "many"])
    assert exc.value.code == check.EXIT_USAGE
