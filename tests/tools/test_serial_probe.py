"""test_config.py and --discover through an optical probe: a mode E meter on a pty line.

The rig lets the pty take 7E1 (devtools/pty_7e1: a Linux pty refuses it with EINVAL); the tools
run the production serial link unchanged.
"""
from __future__ import annotations

import json

import pytest

from tb_dlms.config import load_connector_config
from tb_dlms.devtools import pty_7e1
from tb_dlms.simulator import MeterSpec, Simulator
from tb_dlms.tools import check
from tools_support import POINTS, make_config_dir

IDENT = "/SIM5\\2PROBE-7"


@pytest.fixture(scope="module")
def probe_line(tmp_path_factory):
    pty_7e1.install()
    path = str(tmp_path_factory.mktemp("tty") / "ttyOPTICAL")
    sim = Simulator([MeterSpec("optical", interface="hdlc", serial_line="opt", serial_path=path, mode_e=True,
                               mode_e_identification=IDENT)]).start()
    yield path
    sim.stop()


def test_config_probe_through_an_optical_probe(probe_line, tmp_path, capsys, token):
    device = {"deviceName": "Optical", "deviceType": "dlms-meter",
              "connection": {"serial": {"port": probe_line, "modeE": True, "switchDelayMs": 50},
                             "timeoutMs": 2000, "connectTimeoutMs": 5000},
              "timeseries": POINTS["timeseries"], "attributes": POINTS["attributes"]}
    config = make_config_dir(tmp_path, [device])
    requested = len(pty_7e1.REQUESTED_7E1)
    code = check.main(["--config-dir", str(config), "--json"])
    report = json.loads(capsys.readouterr().out)
    meter = next(m for m in report["meters"] if m["device"] == "Optical")
    assert code == 0 and meter["ok"], meter
    assert meter["endpoint"] == probe_line and meter["identification"] == IDENT
    assert len(pty_7e1.REQUESTED_7E1) > requested, "the sign-on did not ask for 7E1"


def test_discover_through_an_optical_probe(probe_line, capsys):
    code = check.main(["--discover", probe_line, "--mode-e", "--name", "Found", "--timeout-ms", "2000"])
    out = capsys.readouterr()
    assert code == 0, out.err
    entry = json.loads(out.out)
    assert entry["connection"]["serial"] == {"port": probe_line, "baudrate": 9600, "modeE": True}
    config, errors = load_connector_config({"devices": [entry]})
    assert errors == [] and config.devices[0].connection.serial.mode_e
