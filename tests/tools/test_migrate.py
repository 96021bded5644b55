"""Migration from a per-meter-token bridge: names kept, phases that never let two pollers share a meter."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from tb_dlms.config import load_connector_config
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
