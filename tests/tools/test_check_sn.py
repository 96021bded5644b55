"""test_config.py probing a short-name meter, with a unit override, exactly as the connector will."""
from __future__ import annotations

import json

from tools_support import device, make_config_dir
from tb_dlms.tools import check


def test_probe_of_a_short_name_meter(sim, tmp_path, token, capsys):
    config = make_config_dir(tmp_path, [
        device("Old SN", sim.port_of("old-sn"), interface="hdlc", authentication="low", password="12345678",
               referencing="sn", unitOverrides={"35": "volt"}),
    ])
    code = check.main(["--config-dir", str(config), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0, data
    meter = data["meters"][0]
    assert meter["status"] == "ok", meter
    readings = {r["key"]: r for r in meter["readings"]}
    assert readings["voltageL1"]["unit"] == "volt" and 180 < readings["voltageL1"]["value"] < 260
    assert readings["energyImport"]["unit"] == "Wh"
    assert readings["serialNumber"]["value"] == str(sim.meter("old-sn").spec.serial_number)
    assert all(r["error"] is None for r in meter["readings"])
