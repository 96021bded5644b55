"""Every command the docs show is run here, or mapped to the test that covers it.

Commands are the ``$ `` lines of ```console blocks in the docs we ship. Each must match exactly one
rule below: the rule either runs it in a sandbox (simulated meters behind the documented
addresses, a scratch root for setup_gateway.sh) and expects exit code 0, or names the test that
covers what cannot run here (systemd). A new documented command without a rule fails the test.
The ```csv block of operations.md is the sample the fleet commands read, so it is tested too.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tb_dlms.simulator import MeterSpec, Simulator

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "QUICKSTART.md", REPO / "ARCHITECTURE.md", REPO / "CONTRIBUTING.md",
        *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)\s*\n(.*?)^```", re.M | re.S)
SETUP_TESTS = "tests/ops/test_setup_gateway.py"

#: (pattern, how): "run" runs it in the sandbox, "prefix"/"prefix+venv" run setup_gateway.sh in a
#: scratch root, anything else is the test that covers the command instead.
RULES: list[tuple[str, str]] = [
    (r"\./setup_gateway\.sh --help", "run"),
    (r"\./setup_gateway\.sh (install|upgrade)", "prefix+venv"),
    (r"\./setup_gateway\.sh (status|uninstall)", "prefix"),
    (r"python3? test_config\.py( .*)?", "run"),
    (r"python -m tb_dlms\.tools\.fleet( .*)?", "run"),
    (r"/opt/tb-dlms/bin/tb-dlms-test-config( .*)?",
     f"{SETUP_TESTS}::test_installed_test_config_runs_from_the_installed_location"),
    (r"systemctl (start|stop|restart|status) tb-gateway",
     f"{SETUP_TESTS}::test_systemd_analyze_verify (needs systemd)"),
    (r"journalctl -u tb-gateway( -f)?", f"{SETUP_TESTS}::test_systemd_analyze_verify (needs systemd)"),
]


def blocks(path: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text(encoding="utf-8")) if lang == language]


def commands(path: Path) -> list[str]:
    return [line[2:].strip() for body in blocks(path, "console") for line in body.splitlines()
            if line.startswith("$ ")]


def rule_for(command: str) -> str:
    bare = command.removeprefix("sudo ")
    found = [how for pattern, how in RULES if re.fullmatch(pattern, bare)]
    assert len(found) == 1, f"documented command {command!r} matches {len(found)} rules: add one to RULES"
    return found[0]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    sim = Simulator([MeterSpec("open"), MeterSpec("locked", auth="low"),
                     MeterSpec("bus", interface="hdlc", hdlc_group="bus", physical_address=17, address_size=4)]).start()
    root = tmp_path_factory.mktemp("docs")
    config = root / "config"
    config.mkdir()
    shutil.copy(REPO / "config" / "tb_gateway.yaml", config)
    shipped = json.loads((REPO / "config" / "dlms_connector.json").read_text())["devices"][0]
    points = {"timeseries": shipped["timeseries"], "attributes": shipped["attributes"]}
    (config / "dlms_connector.json").write_text(json.dumps({"name": "DLMS Connector", "devices": [
        {"deviceName": "Meter 1", "deviceType": "dlms-meter", **points,
         "connection": {"host": "127.0.0.1", "port": sim.port_of("open")}},
        {"deviceName": "Meter 2", "deviceType": "dlms-meter", **points,
         "connection": {"host": "127.0.0.1", "port": sim.port_of("locked"), "authentication": "low",
                        "password": "12345678"}},
    ]}))
    (root / "meters.csv").write_text(blocks(REPO / "docs" / "operations.md", "csv")[0])
    for name in ("test_config.py", "setup_gateway.sh"):
        (root / name).symlink_to(REPO / name)
    endpoints = {"192.168.1.50:4059": f"127.0.0.1:{sim.port_of('locked')}",
                 "192.168.1.60:3333": f"127.0.0.1:{sim.port_of('bus')}"}
    yield root, endpoints
    sim.stop()


def run_documented(command: str, how: str, root: Path, endpoints: dict) -> subprocess.CompletedProcess:
    bare = command.removeprefix("sudo ")
    for documented, real in endpoints.items():
        bare = bare.replace(documented, real)
    argv = shlex.split(bare)
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    if how.startswith("prefix"):
        argv += ["--prefix", str(root / "scratch-root")]
        if how == "prefix+venv":
            argv += ["--venv-from", sys.prefix]
    env = {**os.environ, "TB_GATEWAY_TOKEN": "docs-test", "PYTHONPATH": str(REPO / "connectors"),
           "TB_DLMS_NO_PLATFORM_CHECK": "1"}  # no ThingsBoard behind the sandbox's localhost:1883
    env.pop("NO_COLOR", None)
    return subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=180, env=env)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_documented_commands(doc, sandbox):
    root, endpoints = sandbox
    failures = []
    for command in commands(doc):
        how = rule_for(command)
        if how not in ("run", "prefix", "prefix+venv"):
            covered = how.split("::")[0]
            assert (REPO / covered).is_file(), f"{command!r} is mapped to a missing test {how}"
            continue
        proc = run_documented(command, how, root, endpoints)
        if proc.returncode != 0:
            failures.append(f"$ {command}\n  exit {proc.returncode}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
    assert not failures, "\n\n".join(failures)


def test_operations_doc_shows_the_main_commands():
    documented = " ".join(commands(REPO / "docs" / "operations.md"))
    for needle in ("setup_gateway.sh install", "setup_gateway.sh status", "setup_gateway.sh upgrade",
                   "setup_gateway.sh uninstall", "test_config.py --config-dir", "--json", "--discover",
                   "tb_dlms.tools.fleet meters.csv", "--shards"):
        assert needle in documented, needle


def test_documented_fleet_output_is_what_the_docs_describe(sandbox):
    root, endpoints = sandbox
    proc = run_documented("python -m tb_dlms.tools.fleet meters.csv --shards 2 --out-dir shards2", "run", root,
                          endpoints)
    assert proc.returncode == 0, proc.stderr
    files = sorted((root / "shards2").glob("shard-*/dlms_connector.json"))
    together = [f for f in files if "Bus meter A" in f.read_text()]
    assert together and "Bus meter B" in together[0].read_text(), "one serial server, one shard"
