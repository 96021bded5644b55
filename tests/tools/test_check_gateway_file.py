"""test_config.py and the gateway file: its errors do not stop the meter probes (issue 11, item 5),
and the tb_gateway.json the launcher generated itself is no cause for a warning (item 7)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tools_support import REPO, device, make_config_dir


def run_script(config, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TB_GATEWAY_TOKEN", "NO_COLOR")}
    return subprocess.run([sys.executable, "test_config.py", "--config-dir", str(config), "--no-platform", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env={**base, **(env or {})})


def test_missing_token_still_probes_the_meters(sim, tmp_path):
    """QUICKSTART's order: step 3 (this check) before step 4's exports."""
    config = make_config_dir(tmp_path, [device("Meter 1", sim.port_of("open"))])
    proc = run_script(config, "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 1, "a gateway-file error still fails the check"
    assert "TB_GATEWAY_TOKEN" in " ".join(report["gatewayConfig"]["errors"])
    assert [m["status"] for m in report["meters"]] == ["ok"], "the meter is probed anyway"
    assert report["meters"][0]["readings"][0]["key"] == "voltageL1"


def test_unset_variable_without_default_still_probes_the_meters(sim, tmp_path):
    config = make_config_dir(tmp_path, [device("Meter 1", sim.port_of("open"))])
    yaml_path = config / "tb_gateway.yaml"
    yaml_path.write_text(yaml_path.read_text().replace('"${TB_GATEWAY_HOST:-localhost}"', '"${MY_TB_HOST}"'))
    proc = run_script(config, env={"TB_GATEWAY_TOKEN": "t"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "MY_TB_HOST is not set" in proc.stdout
    assert "1 meter(s): 1 ok" in proc.stdout


def test_no_warning_about_the_json_the_launcher_generated(sim, tmp_path):
    config = make_config_dir(tmp_path, [device("Meter 1", sim.port_of("open"))])
    env = {"TB_GATEWAY_TOKEN": "t"}
    prepared = subprocess.run([sys.executable, "-m", "tb_dlms.launcher", "--config-dir", str(config), "--prepare-only"],
                              capture_output=True, text=True, timeout=60, env={**os.environ, **env})
    assert prepared.returncode == 0, prepared.stderr
    assert not (config / "tb_gateway.json").exists(), "the launcher writes into the work dir, not the config dir"
    # Earlier launchers wrote it beside the YAML, with their mark: that file draws no warning either.
    shutil.copyfile(tmp_path / "gateway-config" / "tb_gateway.json", config / "tb_gateway.json")
    proc = run_script(config, "--no-probe", env=env)
    assert proc.returncode == 0, proc.stdout
    assert "is ignored" not in proc.stdout and "warning:" not in proc.stdout


def test_a_hand_written_json_beside_the_yaml_is_still_reported(tmp_path):
    config = make_config_dir(tmp_path, [device("Meter 1", 4059)])
    (config / "tb_gateway.json").write_text(json.dumps({"thingsboard": {"host": "elsewhere"}}))
    proc = run_script(config, "--no-probe", env={"TB_GATEWAY_TOKEN": "t"})
    assert "warning: tb_gateway.json is ignored" in proc.stdout
