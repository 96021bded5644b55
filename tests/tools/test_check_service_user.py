"""test_config.py --service-user: a file the service user cannot read is a config error, as it
would stop the installed service (the launcher copies the connector files at every start)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tools_support import REPO, device, make_config_dir

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files 'nobody' cannot read")


def _run(config_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TB_GATEWAY_TOKEN": "tok"}
    return subprocess.run([sys.executable, str(REPO / "test_config.py"), "--config-dir", str(config_dir),
                           "--no-probe", "--service-user", "nobody"], capture_output=True, text=True, env=env,
                          timeout=60)


def test_connector_file_the_service_user_cannot_read_is_flagged():
    base = Path(tempfile.mkdtemp(prefix="tb-dlms-check-"))  # pytest's tmp dirs are 0700 root
    try:
        base.chmod(0o755)
        config = make_config_dir(base, [device("Meter 1", 4059)])
        for path in (config, *config.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        ok = _run(config)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        (config / "dlms_connector.json").chmod(0o600)  # root only
        bad = _run(config)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "dlms_connector.json: not readable by the service user nobody" in bad.stdout + bad.stderr
    finally:
        subprocess.run(["rm", "-rf", str(base)])
