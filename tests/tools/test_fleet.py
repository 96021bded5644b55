"""Fleet inventory: CSV -> validated connector file(s), stable sharding, serial servers kept together."""
from __future__ import annotations

import json
from pathlib import Path

from tb_dlms.config import load_connector_config
from tb_dlms.tools import fleet

HEADER = "name,host,port,interface,client,server_logical,server_physical,server_size,auth,password_env,profile\n"


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


def fleet_rows(n: int) -> list[str]:
    rows = [f"Meter {i},10.0.{i // 200}.{i % 200 + 1},4059,wrapper,16,1,,,none,,three_phase_basic" for i in range(n)]
    rows += [f"Bus {k},10.9.0.{k // 3},3333,hdlc,32,1,{17 + k % 3},4,low,BUS_PW,single_phase_basic"
             for k in range(9)]
    return rows


def test_single_file_is_schema_valid(tmp_path, monkeypatch, capsys):
    csv_file = write_csv(tmp_path / "m.csv", fleet_rows(5))
    out = tmp_path / "dlms_connector.json"
    assert fleet.main([str(csv_file), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert len(data["devices"]) == 14 and data["id"]
    bus = next(d for d in data["devices"] if d["deviceName"] == "Bus 0")
    assert bus["connection"]["password"] == "${BUS_PW}"
    assert [p["key"] for p in bus["timeseries"]][:2] == ["voltageL1", "currentL1"]
    monkeypatch.setenv("BUS_PW", "secret")
    config, errors = load_connector_config(data)
    assert errors == [] and len(config.devices) == 14
    assert "BUS_PW" in capsys.readouterr().err


def test_shards_are_stable_and_keep_serial_servers_together(tmp_path):
    csv_file = write_csv(tmp_path / "m.csv", fleet_rows(60))
    assert fleet.main([str(csv_file), "--shards", "4", "--out-dir", str(tmp_path / "a")]) == 0
    shards = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "a").glob("shard-*/dlms_connector.json")}
    assert len(shards) == 4
    names = [d["deviceName"] for s in shards.values() for d in s["devices"]]
    assert sorted(names) == sorted(set(names)) and len(names) == 69
    ids = {s["id"] for s in shards.values()}
    assert len(ids) == 4, "each shard is its own connector"
    for s in shards.values():
        hosts = {d["connection"]["host"] for d in s["devices"] if d["deviceName"].startswith("Bus")}
        for other in shards.values():
            if other is not s:
                assert not hosts & {d["connection"]["host"] for d in other["devices"]
                                    if d["deviceName"].startswith("Bus")}
    # Adding meters never moves the existing ones.
    csv2 = write_csv(tmp_path / "m2.csv", fleet_rows(60) + ["Extra,10.8.0.1,4059,wrapper,16,1,,,none,,energy_only"])
    assert fleet.main([str(csv2), "--shards", "4", "--out-dir", str(tmp_path / "b")]) == 0
    for shard, data in shards.items():
        again = json.loads((tmp_path / "b" / shard / "dlms_connector.json").read_text())
        assert {d["deviceName"] for d in data["devices"]} <= {d["deviceName"] for d in again["devices"]}


def test_invalid_rows_name_the_line(tmp_path, capsys):
    csv_file = write_csv(tmp_path / "m.csv", ["A,10.0.0.1,4059,wrapper,16,1,,,none,,three_phase_basic",
                                             "B,10.0.0.2,99999,wrapper,16,1,,,none,,three_phase_basic"])
    assert fleet.main([str(csv_file), "--out", str(tmp_path / "x.json")]) == 1
    assert "line 3" in capsys.readouterr().err and not (tmp_path / "x.json").exists()
    bad = write_csv(tmp_path / "p.csv", ["A,10.0.0.1,4059,wrapper,16,1,,,none,,no_such_profile"])
    assert fleet.main([str(bad)]) == 1
    assert "no_such_profile" in capsys.readouterr().err


def test_custom_profiles(tmp_path):
    profiles = tmp_path / "profiles.json"
    profiles.write_text(json.dumps({"mine": {"timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}]}}))
    csv_file = write_csv(tmp_path / "m.csv", ["A,10.0.0.1,4059,wrapper,16,1,,,none,,mine"])
    out = tmp_path / "c.json"
    assert fleet.main([str(csv_file), "--profiles", str(profiles), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["devices"][0]["timeseries"] == [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}]
