"""``test_config.py`` on each kind of broken connector file: the gateway's verdict, file and place named.

Each file is also shown to the gateway's own parser (simplejson, as ``_load_connectors`` calls it), so
"the check calls it invalid" and "the gateway cannot run it" are asserted side by side.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

simplejson = pytest.importorskip("simplejson")

REPO = Path(__file__).resolve().parents[2]


def device(name: str, port: int = 4059, **connection) -> dict:
    return {"deviceName": name, "connection": {"host": "127.0.0.1", "port": port, **connection},
            "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}]}


GOOD = json.dumps({"id": "c1", "logLevel": "INFO", "devices": [device("Meter 1"), device("Meter 2", 4060)]},
                  indent=2)


def run_check(path: Path) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "test_config.py", "--connector", str(path), "--no-probe",
                           "--color", "never"], cwd=REPO, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


def gateway_parses(data: bytes) -> bool:
    try:
        simplejson.loads(data.decode("utf-8"))  # open(..., encoding="UTF-8").read(), then loads
    except (UnicodeDecodeError, simplejson.JSONDecodeError):
        return False
    return True


@pytest.mark.parametrize("data, message", [
    (GOOD.replace('"port": 4060', '"port": NaN').encode(),
     'bad.json: not valid JSON at line 22 column 17: NaN is not a JSON number (at devices[1] "Meter 2": '
     "connection.port)"),
    (GOOD.replace('"logLevel": "INFO"', '"logLevel": "INFO", "pollPeriod": Infinity').encode(),
     "bad.json: not valid JSON at line 3 column 37: Infinity is not a JSON number (at pollPeriod)"),
    (GOOD[:-2].encode() + b",\n}",
     "bad.json: not valid JSON at line 31 column 4: Illegal trailing comma before end of object"),
    (GOOD.replace('"id": "c1"', '"id": "c1", "x": [1, 2,]', 1).encode(),
     "bad.json: not valid JSON at line 2 column 25: Illegal trailing comma before end of array"),
    (b"", "bad.json is empty"),
    (GOOD.replace("Meter 1", "Z\xe4hler 1").encode("latin-1"), "bad.json is not UTF-8 text (byte "),
], ids=["NaN", "Infinity", "trailing comma", "array trailing comma", "empty", "latin-1"])
def test_a_file_the_gateway_cannot_parse_exits_1_naming_file_and_place(tmp_path, data, message):
    path = tmp_path / "bad.json"
    path.write_bytes(data)
    assert not gateway_parses(data)
    code, out = run_check(path)
    assert code == 1, out
    assert f"error: {message}" in out
    assert "the gateway cannot parse this file and starts none of its meters" in out
    assert "0 valid meter(s)" in out and "Traceback" not in out


def test_a_top_level_array_exits_1_naming_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(f"[{GOOD}]")
    code, out = run_check(path)
    assert code == 1, out
    assert ("error: bad.json: the connector configuration must be a JSON object {...}, got a list; "
            "the gateway starts none of its meters") in out
    assert "'str' object" not in out and "'list' object" not in out


def test_a_bom_file_is_valid_as_the_gateway_runs_it(tmp_path):
    path = tmp_path / "bom.json"
    data = b"\xef\xbb\xbf" + GOOD.encode()
    path.write_bytes(data)
    assert gateway_parses(data)
    code, out = run_check(path)
    assert code == 0, out
    assert "valid, 2 valid meter(s)" in out


@pytest.mark.parametrize("mutate, field, message", [
    (lambda d: d["devices"].append(device("Twin")), 'devices[2] "Twin": connection.serverAddress',
     'WRAPPER client address 16 with server address 1 on 127.0.0.1:4059 is already used by devices[0] "Meter 1"'),
    (lambda d: d["devices"].extend([device("Bus 1", 4061, interface="hdlc", serverAddress={"logical": 1,
                                                                                           "physical": 17}),
                                    device("Bus 2", 4061, interface="hdlc", serverAddress={"logical": 1,
                                                                                           "physical": 17})]),
     'devices[3] "Bus 2": connection.serverAddress',
     'HDLC server address 145 on 127.0.0.1:4061 is already used by devices[2] "Bus 1"'),
    (lambda d: d["devices"].append(device("x" * 10_240, 4062)), f'devices[2] "{"x" * 40}...": deviceName',
     "must be at most 255 characters (ThingsBoard's limit for names and keys), got 10240"),
], ids=["wrapper twin", "hdlc twin", "10 KB name"])
def test_a_bad_device_exits_1_naming_device_and_field_and_keeps_the_others(tmp_path, mutate, field, message):
    data = json.loads(GOOD)
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    code, out = run_check(path)
    assert code == 1, out
    assert f"error: {field} {message}" in out
    assert f"{len(data['devices']) - 1} valid meter(s)" in out


def test_a_gateway_file_with_nan_is_refused_as_the_gateway_refuses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TB_GATEWAY_TOKEN", "test-token")
    (tmp_path / "dlms.json").write_text(GOOD)
    (tmp_path / "tb_gateway.json").write_text(json.dumps({
        "thingsboard": {"host": "127.0.0.1", "port": 1883, "security": {"accessToken": "t"}},
        "storage": {"type": "memory"},
        "connectors": [{"type": "dlms", "name": "DLMS", "configuration": "dlms.json", "class": "DLMSConnector"}],
    }).replace('"port": 1883', '"port": NaN'))
    proc = subprocess.run([sys.executable, "test_config.py", "--config-dir", str(tmp_path), "--no-probe",
                           "--color", "never"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("error: tb_gateway.json: not valid JSON at line 1 column 47: NaN is not a JSON number "
            "(at thingsboard.port)") in proc.stdout
    assert "the gateway cannot parse this file and does not start" in proc.stdout


def test_a_gateway_file_that_is_an_array_is_an_error_not_a_traceback(tmp_path):
    (tmp_path / "tb_gateway.json").write_text("[]")
    proc = subprocess.run([sys.executable, "test_config.py", "--config-dir", str(tmp_path), "--no-probe",
                           "--color", "never"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "tb_gateway.json: must be a JSON object {...} at the top level" in proc.stdout
