"""The files we ship must load cleanly with the same schema the connector uses."""
from __future__ import annotations

import json
from pathlib import Path

from tb_dlms.config import load_connector_file
from tb_dlms.protocol.settings import Interface

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
KEY = "000102030405060708090a0b0c0d0e0f"


def test_demo_config_loads_three_meters():
    cfg, errors = load_connector_file(CONFIG_DIR / "dlms_connector.json")
    assert [str(e) for e in errors] == []
    assert [d.name for d in cfg.devices] == ["Meter 1", "Meter 2", "Meter 3"]
    assert [d.connection.interface for d in cfg.devices] == [Interface.WRAPPER, Interface.WRAPPER, Interface.HDLC]
    assert [d.connection.port for d in cfg.devices][:2] == [4059, 4060]
    for device in cfg.devices:
        assert device.poll_period_s == 5
        assert len(device.timeseries) == 10
        assert {str(p.ref.obis) for p in device.attributes} == {"0.0.96.1.0.255", "1.0.0.2.0.255"}


def test_example_config_loads_and_covers_every_key(monkeypatch, tmp_path):
    monkeypatch.setenv("METER4_PASSWORD", "12345678")
    monkeypatch.setenv("METER5_BLOCK_CIPHER_KEY", KEY)
    monkeypatch.setenv("METER5_AUTHENTICATION_KEY", "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf")
    from tb_dlms.simulator import keys
    for name in ("METER6_BLOCK_CIPHER_KEY", "METER6_AUTHENTICATION_KEY", "METER6_MASTER_KEY"):
        monkeypatch.setenv(name, KEY)
    monkeypatch.setenv("METER6_SIGNING_KEY", keys.private_pem(keys.CLIENT, 1).decode())
    monkeypatch.setenv("METER6_PUBLIC_KEY", keys.public_pem("meter 6", 1).decode())
    key_file = tmp_path / "meter7.json"
    key_file.write_text(json.dumps({"blockCipherKey": KEY, "authenticationKey": KEY}))
    monkeypatch.setenv("METER7_KEY_FILE", str(key_file))
    monkeypatch.setenv("METER7_HLS_SECRET", "a secret")
    monkeypatch.setenv("METER7_MASTER_KEY", KEY)
    path = CONFIG_DIR / "dlms_connector.json.example"
    cfg, errors = load_connector_file(path)
    assert [str(e) for e in errors] == []
    assert len(cfg.devices) >= 4

    from tb_dlms.config import schema

    used: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                used.add(k)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(path.read_text()))
    documented = set(schema.DEVICE_KEYS + schema.CONNECTION_KEYS + schema.SERVER_ADDRESS_KEYS + schema.SECURITY_KEYS
                     + schema.HDLC_KEYS + schema.POINT_KEYS + schema.REPORT_KEYS)
    documented |= set(schema.TOP_KEYS) - {"id", "type", "configVersion"}
    assert documented - used == set()
