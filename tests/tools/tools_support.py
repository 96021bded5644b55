"""Helpers for the operator tools' tests: config dirs pointing at simulated meters."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from tb_dlms.devtools.sim_devices import device_for
from tb_dlms.simulator import Simulator

REPO = Path(__file__).resolve().parents[2]
POINTS = json.loads((REPO / "config" / "dlms_connector.json").read_text())["devices"][0]


def sim_device(sim: Simulator, meter: str, name: str, **connection) -> dict:
    """Device ``name`` reaching simulated meter ``meter`` as its spec says; ``connection`` overrides
    keys on purpose (a wrong password, an address no meter answers)."""
    return device_for(sim, meter, POINTS["timeseries"], device_name=name, device_type="dlms-meter",
                      connection=connection, attributes=POINTS["attributes"])


def device(name: str, port: int, **connection) -> dict:
    """Device ``name`` at ``port`` where no simulated meter is meant (a closed port, a typo), or
    with its connection spelled out in full."""
    conn = {"host": "127.0.0.1", "port": port, **connection}
    return {"deviceName": name, "deviceType": "dlms-meter", "connection": conn,
            "timeseries": POINTS["timeseries"], "attributes": POINTS["attributes"]}


def make_config_dir(tmp_path: Path, devices: list[dict]) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(REPO / "config" / "tb_gateway.yaml", config)
    connector = {"name": "DLMS Connector", "pollPeriod": 5,
                 "defaults": {"timeoutMs": 300, "retries": 0, "connectTimeoutMs": 2000}, "devices": devices}
    (config / "dlms_connector.json").write_text(json.dumps(connector, indent=2))
    return config
