"""Migration from a per-meter-token bridge: names kept, phases that never let two pollers share a meter."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tb_dlms.config import load_connector_config
from tb_dlms.simulator import keys
from tb_dlms.tools import migrate

BRIDGE = "name,host,port,token,phase\n"


def plan(path: Path, rows: list[str], header: str = BRIDGE) -> Path:
    path.write_text(header + "".join(r + "\n" for r in rows))
    return path


def test_phase_one_moves_its_meters_and_keeps_the_rest_for_the_old_bridge(tmp_path, capsys):
    p = plan(tmp_path / "bridge.csv", ["Flat 1 meter,10.0.0.1,4059,tok-aaa,1",
                                       "Flat 2 meter,10.0.0.2,4059,tok-bbb,2",
                                       "Shop meter,10.0.0.3,4059,tok-ccc,2"])
    out, rest = tmp_path / "dlms_connector.json", tmp_path / "old.csv"
    assert migrate.main([str(p), "--phase", "1", "--out", str(out), "--old-bridge-out", str(rest)]) == 0
    data = json.loads(out.read_text())
    assert [d["deviceName"] for d in data["devices"]] == ["Flat 1 meter"]  # the ThingsBoard name, unchanged
    assert "tok-" not in out.read_text(), "device tokens never enter the connector file"
    config, errors = load_connector_config(data)
    assert errors == [] and config.devices[0].connection.host == "10.0.0.1"
    kept = list(csv.DictReader(rest.open()))
    assert [(r["name"], r["token"]) for r in kept] == [("Flat 2 meter", "tok-bbb"), ("Shop meter", "tok-ccc")]
    err = capsys.readouterr().err
    assert "Stop the old bridge from polling these BEFORE" in err and "Flat 1 meter" in err

    assert migrate.main([str(p), "--phase", "2", "--out", str(out), "--old-bridge-out", str(rest)]) == 0
    assert [d["deviceName"] for d in json.loads(out.read_text())["devices"]] == \
        ["Flat 1 meter", "Flat 2 meter", "Shop meter"]
    assert list(csv.DictReader(rest.open())) == []


def test_a_serial_server_split_across_phases_is_refused(tmp_path, capsys):
    header = "name,host,port,token,phase,interface,server_physical\n"
    p = plan(tmp_path / "bridge.csv", ["Bus A,10.0.1.1,3333,t1,1,hdlc,17",
                                       "Bus B,10.0.1.1,3333,t2,2,hdlc,18"], header)
    out = tmp_path / "c.json"
    assert migrate.main([str(p), "--out", str(out), "--old-bridge-out", str(tmp_path / "o.csv")]) == 1
    err = capsys.readouterr().err
    assert "10.0.1.1:3333 is split across phases" in err and "Bus A" in err and "Bus B" in err
    assert not out.exists(), "a refused plan writes nothing"


def test_one_meter_twice_or_a_name_twice_is_refused(tmp_path, capsys):
    p = plan(tmp_path / "bridge.csv", ["M1,10.0.0.1,4059,t1,1", "M1 again,10.0.0.1,4059,t2,1",
                                       "M2,10.0.0.2,4059,t3,1", "M2,10.0.0.9,4059,t4,1"])
    assert migrate.main([str(p), "--out", str(tmp_path / "c.json")]) == 1
    err = capsys.readouterr().err
    assert "'M1 again' is the same meter as 'M1'" in err
    assert "device name 'M2' already used on line 4" in err


def test_meters_left_behind_need_a_list_for_the_old_bridge(tmp_path, capsys):
    p = plan(tmp_path / "bridge.csv", ["M1,10.0.0.1,4059,t1,1", "M2,10.0.0.2,4059,t2,2"])
    assert migrate.main([str(p), "--out", str(tmp_path / "c.json")]) == 1
    assert "give --old-bridge-out" in capsys.readouterr().err


def test_bad_phase_and_bad_port_name_the_line(tmp_path, capsys):
    p = plan(tmp_path / "bridge.csv", ["M1,10.0.0.1,4059,t1,first"])
    assert migrate.main([str(p), "--out", str(tmp_path / "c.json")]) == 1
    assert "line 2: phase must be a whole number" in capsys.readouterr().err
    p = plan(tmp_path / "bridge2.csv", ["M1,10.0.0.1,99999,t1,1"])
    assert migrate.main([str(p), "--out", str(tmp_path / "c.json")]) == 1
    assert "line 2" in capsys.readouterr().err


def test_plain_bridge_list_without_phase_moves_everything(tmp_path):
    p = plan(tmp_path / "bridge.csv", ["M1,10.0.0.1,4059,t1", "M2,10.0.0.2,4059,t2"], "name,host,port,token\n")
    out = tmp_path / "c.json"
    assert migrate.main([str(p), "--out", str(out), "--auth", "low", "--client", "32",
                         "--password-env", "METER_PASSWORD"]) == 0
    devices = json.loads(out.read_text())["devices"]
    assert {d["connection"]["password"] for d in devices} == {"${METER_PASSWORD}"}
    assert {d["connection"]["clientAddress"] for d in devices} == {32}


SECURITY = {"high_gmac": {"systemTitle": "5442444c4d533031", "blockCipherKey": "${M_BCK}",
                          "authenticationKey": "${M_AK}"},
            "high_sha256": {"systemTitle": "5442444c4d533031"},
            "high_ecdsa": {"systemTitle": "5442444c4d533031", "suite": 2, "blockCipherKey": "${M_BCK}",
                           "authenticationKey": "${M_AK}"}}


@pytest.mark.parametrize("auth", ["none", "low", "high", "high_md5", "high_sha1", "high_gmac", "high_sha256",
                                  "high_ecdsa"])
def test_every_mechanism_migrates(tmp_path, monkeypatch, auth):
    """--auth takes every mechanism (before: none, low, high_gmac, and high_gmac could not be given
    its security section); --security supplies connection.security as defaults.security."""
    p = plan(tmp_path / "bridge.csv", ["M1,10.0.0.1,4059,t1"], "name,host,port,token\n")
    out = tmp_path / "c.json"
    args = [str(p), "--out", str(out), "--auth", auth, "--client", "1"]
    if auth != "none":
        args += ["--password-env", "M_PASSWORD"]
    if auth in SECURITY:
        security = dict(SECURITY[auth])
        if auth == "high_ecdsa":
            (tmp_path / "client.pem").write_bytes(keys.private_pem(keys.CLIENT, 2))
            (tmp_path / "meter.pem").write_bytes(keys.public_pem("meter", 2))
            security.update(signingKey=str(tmp_path / "client.pem"), meterPublicKey=str(tmp_path / "meter.pem"))
        (tmp_path / "security.json").write_text(json.dumps(security))
        args += ["--security", str(tmp_path / "security.json")]
    assert migrate.main(args) == 0
    data = json.loads(out.read_text())
    assert "${M_BCK}" in out.read_text() or auth not in ("high_gmac", "high_ecdsa"), "keys stay references"
    monkeypatch.setenv("M_PASSWORD", "12345678")
    monkeypatch.setenv("M_BCK", "11" * 32 if auth == "high_ecdsa" else "11" * 16)
    monkeypatch.setenv("M_AK", "22" * 32 if auth == "high_ecdsa" else "22" * 16)
    config, errors = load_connector_config(data)
    assert errors == [] and config.devices[0].connection.authentication.value == auth


def test_a_mechanism_without_its_security_is_refused_naming_the_field(tmp_path, capsys):
    p = plan(tmp_path / "bridge.csv", ["M1,10.0.0.1,4059,t1"], "name,host,port,token\n")
    assert migrate.main([str(p), "--out", str(tmp_path / "c.json"), "--auth", "high_sha256", "--client", "1",
                         "--password-env", "M_PASSWORD"]) == migrate.EXIT_INVALID
    assert "connection.security is required when authentication is 'high_sha256'" in capsys.readouterr().err
