"""A read-only config dir, as installed (root-owned /etc, ProtectSystem=strict), and a connector file
without "id" (QUICKSTART's example): the real gateway, run as an unprivileged user, loads the
connector and the meters' telemetry arrives; nothing is written into the config dir.

Before the launcher's gateway-config dir, the gateway (3.8.5) tried to write the id into the file and
logged only ``Error on loading connector: PermissionError(13, 'Permission denied')``.
As root (the test machine) the gateway runs as ``nobody`` via ``setpriv``, with the system Python
(the venv's interpreter may sit under /root, which nobody cannot enter) and the venv's packages.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from e2e_support import REPO, stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess
from tb_dlms.simulator import MeterSpec, Simulator

NOBODY = 65534
KEYS = ("voltageL1", "frequency", "energyImport")
SYSTEM_PYTHON = Path("/usr/bin/python3")


def _unprivileged_python(directory: Path) -> tuple[str, dict]:
    """An interpreter command that runs as an unprivileged user, and the env it needs."""
    if os.geteuid() != 0:
        return sys.executable, {}
    if not shutil.which("setpriv") or not SYSTEM_PYTHON.exists():
        pytest.skip("as root this test needs setpriv and /usr/bin/python3 to run the gateway unprivileged")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    out = os.popen(f"{SYSTEM_PYTHON} -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'").read().strip()
    if out != version:
        pytest.skip(f"/usr/bin/python3 is {out}, the venv is {version}: its packages would not load")
    wrapper = directory / "python-as-nobody"
    wrapper.write_text(f"#!/bin/sh\nexec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups "
                       f"{SYSTEM_PYTHON} \"$@\"\n")
    wrapper.chmod(0o755)
    paths = os.pathsep.join([sysconfig.get_paths()["purelib"], str(REPO / "connectors")])
    return str(wrapper), {"PYTHONPATH": paths, "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.fixture(scope="module")
def simulator():
    sim = Simulator([MeterSpec("Meter RO", interface="wrapper", auth="none")]).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, simulator):
    base = Path(tempfile.mkdtemp(prefix="tb-dlms-readonly-"))  # pytest's tmp dirs are 0700 root
    base.chmod(0o755)
    python, env = _unprivileged_python(base)
    connector = {  # no "id", as in QUICKSTART
        "name": "DLMS Connector",
        "pollPeriod": 2,
        "devices": [{"deviceName": "Meter RO", "deviceType": "dlms-meter",
                     "connection": {"host": "127.0.0.1", "port": simulator.port_of("Meter RO"),
                                    "interface": "wrapper", "authentication": "none", "clientAddress": 16,
                                    "serverAddress": {"logical": 1}},
                     "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"},
                                    {"key": "frequency", "obis": "1.0.14.7.0.255"},
                                    {"key": "energyImport", "obis": "1.0.1.8.0.255"}]}],
    }
    gw = GatewayProcess(broker.port, connector_config=connector, workdir=base / "work", python=python,
                        extra_env=env)
    for path in (gw.config_dir, *gw.config_dir.iterdir()):  # read-only for everyone but root
        path.chmod(0o555 if path.is_dir() else 0o444)
    gw.data_dir.mkdir()
    if os.geteuid() == 0:
        for path in (gw.workdir, gw.data_dir):
            os.chown(path, NOBODY, NOBODY)
    before = {p.name: p.read_bytes() for p in gw.config_dir.iterdir()}
    gw.start()
    yield gw, before
    stop_gateway(gw)
    gw.config_dir.chmod(0o755)
    shutil.rmtree(base, ignore_errors=True)


def test_config_dir_is_not_writable_by_the_gateway(gateway):
    gw, _ = gateway
    mode = gw.config_dir.stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    if os.geteuid() == 0:
        assert gw.config_dir.stat().st_uid != NOBODY


def test_meter_telemetry_arrives(gateway, fake_tb):
    gw, _ = gateway
    try:
        fake_tb.wait_telemetry("Meter RO", KEYS, timeout=60)
    except TimeoutError:
        gw.assert_running()
        raise AssertionError(f"no telemetry; gateway log:\n{gw.log_text()[-4000:]}") from None
    assert "Error on loading connector" not in gw.log_text()
    if os.geteuid() == 0:
        assert gw.logs_dir.stat().st_uid == NOBODY  # the gateway really ran unprivileged


def test_runtime_files_go_to_the_work_dir(gateway, fake_tb):
    gw, before = gateway
    fake_tb.wait_connect("Meter RO", 60)
    runtime = gw.workdir / "gateway-config"
    devices = fake_tb.wait_for(
        lambda: (runtime / "connected_devices.json").exists()
        and "Meter RO" in json.loads((runtime / "connected_devices.json").read_text() or "{}"),
        30, "Meter RO in gateway-config/connected_devices.json")
    assert devices
    assert json.loads((runtime / "dlms_connector.json").read_text())["id"]  # the id lives in the copy
    assert {p.name: p.read_bytes() for p in gw.config_dir.iterdir()} == before  # nothing written there
