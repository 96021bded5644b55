"""``start_gateway.sh --demo --duration N`` runs everything locally and shows live telemetry.

Runs the real script (in this test environment's virtualenv: TB_DLMS_SKIP_SETUP=1), which starts
Mosquitto, the simulator (matching config/dlms_connector.json), the gateway and the fake
ThingsBoard live table, then cleans up.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from e2e_support import REPO

# The gateway loads this class by name: a missing module or a rename fails here, not as a skip.
from tb_dlms.gateway.connector import DLMSConnector  # noqa: F401

DURATION_S = 20


def test_demo_shows_live_telemetry(mosquitto_path):
    devices = json.loads((REPO / "config" / "dlms_connector.json").read_text())["devices"]
    env = {**os.environ, "TB_DLMS_VENV": str(Path(sys.executable).parent.parent), "TB_DLMS_SKIP_SETUP": "1",
           "MOSQUITTO": mosquitto_path}
    proc = subprocess.run(["bash", str(REPO / "start_gateway.sh"), "--demo", "--duration", str(DURATION_S)],
                          cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=DURATION_S + 90)
    out = proc.stdout
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{out[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    summary = re.search(r"SUMMARY meters=(\d+) meters_with_telemetry=(\d+) telemetry_entries=(\d+)", out)
    assert summary, out[-4000:]
    assert int(summary.group(2)) == len(devices), out[-4000:]
    final = out.split("--- final", 1)[1]
    for dev in devices:
        row = next((line for line in final.splitlines() if line.strip().startswith(dev["deviceName"])), None)
        assert row is not None, final
        assert "voltageL1=" in row, row
    assert "demo: stopped" in out
