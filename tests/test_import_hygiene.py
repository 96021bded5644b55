"""What loading the config and the session seam must not drag in: gurux.

Importing gurux silences its modules and patches its cipher (protocol/quiet.py, fast_gcm.py);
``test_config.py``, the launcher and the gateway's unit tests with fake sessions must not pay for
it or be changed by it. Each check runs in a fresh interpreter, since this test process has
imported gurux long before.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = "import sys, {module}; assert not [m for m in sys.modules if m.startswith('gurux')], " \
        "sorted(m for m in sys.modules if m.startswith('gurux'))"


@pytest.mark.parametrize("module", [
    "tb_dlms.config",
    "tb_dlms.protocol.settings",
    "tb_dlms.protocol.link",
    "tb_dlms.gateway.sessions",
])
def test_module_imports_no_gurux(module):
    done = subprocess.run([sys.executable, "-c", CHECK.format(module=module)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_config_loads_without_gurux():
    code = ("import sys; from tb_dlms.config import load_connector_config; "
            "cfg, errors = load_connector_config({'devices': [{'deviceName': 'M', 'connection': "
            "{'host': '10.0.0.5', 'interface': 'hdlc', 'serialNumber': 12345678}, "
            "'timeseries': [{'key': 'v', 'obis': '1.0.32.7.0.255'}]}]}); "
            "assert errors == [] and cfg.devices[0].meter_settings().server_address, errors; "
            "assert not [m for m in sys.modules if m.startswith('gurux')]")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
