"""``python3 test_config.py`` with an interpreter that lacks the gateway's packages (issue 11, item 4).

The docs and the original design card have users type ``python3 test_config.py``; on a host that
is the system Python, without thingsboard-gateway or gurux-dlms. The script must carry on in the
project's virtualenv (creating it with ``start_gateway.sh --setup-only`` when missing).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


from tools_support import REPO, device, make_config_dir

VENV_PYTHON = Path(sys.prefix) / "bin" / "python"


def bare_python(tmp_path: Path) -> str:
    """An interpreter without the project's packages: /usr/bin/python3, else a fresh bare venv."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if Path(candidate).exists() and subprocess.run(
                [candidate, "-c", "import thingsboard_gateway"], capture_output=True).returncode != 0:
            return candidate
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    return str(bare / "bin" / "python")


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "TB_DLMS_TEST_CONFIG_REEXEC")}
    return {**env, "TB_GATEWAY_TOKEN": "t", "TB_DLMS_NO_PLATFORM_CHECK": "1", **extra}


def test_system_python_reexecutes_in_the_project_venv(sim, tmp_path):
    python = bare_python(tmp_path)
    config = make_config_dir(tmp_path, [device("Meter 1", sim.port_of("open"))])
    proc = subprocess.run([python, "test_config.py", "--config-dir", str(config)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=clean_env(TB_DLMS_VENV=str(Path(sys.prefix))))
    assert "ModuleNotFoundError" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "voltageL1" in proc.stdout and "1 meter(s): 1 ok" in proc.stdout
    assert f"running in the virtualenv {Path(sys.prefix)}" in proc.stderr


def test_missing_venv_is_created_with_start_gateway_setup_only(sim, tmp_path):
    """A checkout without .venv: the script runs start_gateway.sh --setup-only, then re-executes.

    The setup script here is a stand-in that links the test's own virtualenv (a real setup
    downloads and installs for minutes); what is tested is that test_config.py calls it and
    then runs in what it created.
    """
    python = bare_python(tmp_path)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(REPO / "test_config.py", checkout)
    os.symlink(REPO / "connectors", checkout / "connectors")
    called = checkout / "setup-called"
    setup = checkout / "start_gateway.sh"
    setup.write_text(f'#!/bin/sh\n[ "$1" = --setup-only ] || exit 9\necho "$1" > {called}\n'
                     f'ln -s {Path(sys.prefix)} {checkout / ".venv"}\n')
    setup.chmod(0o755)
    config = make_config_dir(tmp_path, [device("Meter 1", sim.port_of("open"))])
    env = clean_env()
    env.pop("TB_DLMS_VENV", None)
    proc = subprocess.run([python, "test_config.py", "--config-dir", str(config), "--json"], cwd=checkout,
                          capture_output=True, text=True, timeout=120, env=env)
    assert called.read_text().strip() == "--setup-only"
    assert "start_gateway.sh --setup-only" in proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"ok": true' in proc.stdout


def test_a_broken_venv_gives_a_clear_error(tmp_path):
    python = bare_python(tmp_path)
    broken = tmp_path / "broken-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(broken)], check=True)
    proc = subprocess.run([python, "test_config.py", "--no-probe"], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env=clean_env(TB_DLMS_VENV=str(broken)))
    assert proc.returncode == 69, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "lacks thingsboard_gateway" in proc.stderr and "--setup-only" in proc.stderr
