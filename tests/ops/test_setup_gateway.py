"""setup_gateway.sh against a scratch root: install, re-install, status, upgrade, uninstall.

The fast path reuses the test's own virtualenv (--venv-from); one test builds a real virtualenv
from requirements-gateway.txt, as production does (about 40 s here; skipped when the package index
does not offer every pin, with pip's reason, or with TB_DLMS_SKIP_SLOW=1).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "setup_gateway.sh"
CONFIG_FILES = ("tb_gateway.yaml", "dlms_connector.json", "logs.json")


def run(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def paths(root: Path) -> dict[str, Path]:
    return {
        "app": root / "opt/tb-dlms",
        "config": root / "etc/thingsboard-gateway/config",
        "env": root / "etc/thingsboard-gateway/tb-gateway.env",
        "unit": root / "etc/systemd/system/tb-gateway.service",
        "logs": root / "var/log/thingsboard-gateway",
        "state": root / "var/lib/thingsboard-gateway",
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def installed(tmp_path):
    root = tmp_path / "root"
    run("install", "--prefix", str(root), "--venv-from", sys.prefix)
    return root


def test_install_lays_out_files_with_tight_permissions(installed):
    p = paths(installed)
    for name in CONFIG_FILES:
        assert mode(p["config"] / name) == 0o640, name
    assert mode(p["env"]) == 0o640
    assert mode(p["config"]) == 0o750 and mode(p["logs"]) == 0o750 and mode(p["state"]) == 0o750
    assert (p["app"] / "venv").is_symlink() and (p["app"] / "venv/bin/python").exists()
    yaml_text = (p["config"] / "tb_gateway.yaml").read_text()
    assert re.search(rf"^\s+data_(file|folder)_path: {re.escape(str(p['state']))}/data/$", yaml_text, re.M)
    assert not re.search(r"^\s+data_(file|folder)_path: \./", yaml_text, re.M)
    assert str(p["logs"]) in (p["config"] / "logs.json").read_text()
    # The service cannot write this file, so it must already carry the id the gateway would add.
    assert '"id"' in (p["config"] / "dlms_connector.json").read_text()
    unit = p["unit"].read_text()
    for line in ("KillSignal=SIGINT", "Restart=on-failure", "After=network-online.target",
                 "Wants=network-online.target", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "User=tb-gateway", f"ReadWritePaths={p['logs']} {p['state']}\n",
                 f"ExecStart={p['app']}/venv/bin/python -m tb_dlms.launcher --config-dir {p['config']}"):
        assert line in unit, line
    assert "@" not in unit.replace("multi-user", "")


def test_reinstall_is_idempotent_and_keeps_user_changes(installed):
    p = paths(installed)
    before = {n: digest(p["config"] / n) for n in CONFIG_FILES}
    run("install", "--prefix", str(installed), "--venv-from", sys.prefix)
    assert {n: digest(p["config"] / n) for n in CONFIG_FILES} == before
    assert not list(p["config"].glob("*.dist"))

    yaml_file = p["config"] / "tb_gateway.yaml"
    yaml_file.write_text(yaml_file.read_text() + "\n# site change\n")
    env_text = p["env"].read_text() + "TB_GATEWAY_TOKEN=secret\n"
    p["env"].write_text(env_text)
    proc = run("install", "--prefix", str(installed), "--venv-from", sys.prefix)
    assert "# site change" in yaml_file.read_text()
    assert digest(p["config"] / "tb_gateway.yaml.dist") == before["tb_gateway.yaml"]
    assert mode(p["config"] / "tb_gateway.yaml.dist") == 0o640
    assert p["env"].read_text() == env_text
    assert "tb_gateway.yaml.dist" in proc.stderr

    status = run("status", "--prefix", str(installed))
    assert "tb_gateway.yaml modified" in status.stdout
    assert "tb_gateway.yaml.dist pending" in status.stdout
    assert "dlms_connector.json default" in status.stdout

    # Putting the default back makes the pending .dist go away on the next run.
    shutil.copyfile(p["config"] / "tb_gateway.yaml.dist", yaml_file)
    run("upgrade", "--prefix", str(installed), "--venv-from", sys.prefix)
    assert not (p["config"] / "tb_gateway.yaml.dist").exists()


def test_unchanged_default_is_updated_by_upgrade(installed):
    """A file the user never touched follows the new default (the manifest says what we installed)."""
    p = paths(installed)
    manifest = p["app"] / "installed-config.sha256"
    logs = p["config"] / "logs.json"
    old_default = logs.read_text()
    logs.write_text(old_default.replace("INFO", "DEBUG"))  # pretend a previous version shipped this
    lines = [f"{digest(logs)}  logs.json" if line.endswith("  logs.json") else line
             for line in manifest.read_text().splitlines()]
    manifest.write_text("\n".join(lines) + "\n")
    run("upgrade", "--prefix", str(installed), "--venv-from", sys.prefix)
    assert logs.read_text() == old_default
    assert not (p["config"] / "logs.json.dist").exists()


def test_status_and_uninstall(installed, tmp_path):
    p = paths(installed)
    status = run("status", "--prefix", str(installed))
    assert "thingsboard-gateway 3.8.5" in status.stdout
    changed = p["config"] / "dlms_connector.json"
    changed.write_text(changed.read_text().replace("Meter 1", "Feeder 1"))
    run("uninstall", "--prefix", str(installed))
    assert not p["app"].exists() and not p["unit"].exists()
    assert changed.exists(), "a file the user changed survives uninstall"
    assert not (p["config"] / "logs.json").exists() and not (p["config"] / "tb_gateway.yaml").exists()
    assert p["env"].exists() and p["state"].exists() and p["logs"].exists()
    assert Path(sys.prefix, "bin", "python").exists(), "the reused venv itself is never removed"
    assert run("status", "--prefix", str(installed), check=False).returncode == 3
    run("uninstall", "--prefix", str(installed), "--purge")
    assert not (installed / "etc/thingsboard-gateway").exists() and not p["state"].exists()


def test_installed_test_config_runs_from_the_installed_location(installed):
    p = paths(installed)
    with p["env"].open("a") as fh:
        fh.write("TB_GATEWAY_TOKEN=abc\n")
    proc = subprocess.run([str(p["app"] / "bin/tb-dlms-test-config"), "--no-probe", "--json"],
                          capture_output=True, text=True, timeout=60, cwd="/")
    # The shipped example refers to ${METER4_PASSWORD} etc.: invalid until those are set.
    assert proc.returncode == 1, proc.stderr
    assert "METER4_PASSWORD" in proc.stdout


def test_usage_errors():
    assert run("frobnicate", check=False).returncode == 64
    assert run("install", "--bogus", check=False).returncode == 64
    assert "install" in run("--help").stdout


def test_systemd_analyze_verify(installed):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd to run this check)")
    unit = paths(installed)["unit"]
    proc = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in proc.stderr.splitlines() if "tb-gateway.service" in line]
    if proc.returncode != 0 and "Failed to" in proc.stderr and not problems:
        pytest.skip(f"systemd-analyze cannot run here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0 and not problems, proc.stderr


def pinned_set_unavailable(tmp_path: Path, env: dict | None = None) -> str | None:
    """Why the packages ``setup_gateway.sh install`` needs cannot be had from the configured index, or None.

    pip resolves exactly that set without installing it: the pinned service requirements (as the
    script filters them) and the build backend for tb-dlms itself. An index that is reachable but
    lacks one pin is as unusable for the install as no index at all (a probe with one small package
    passed there, and the install then failed); an index that has every pin leaves the install no
    excuse, so after this check any install failure is a failure.
    """
    import tomllib

    pins = [line for line in (REPO / "requirements-gateway.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#") and not re.match(r"(?i)(pytest|hypothesis)==", line)]
    build = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    wanted = tmp_path / "pinned-set.txt"
    wanted.write_text("\n".join(pins + build) + "\n")
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
                               "--disable-pip-version-check", "-r", str(wanted)],
                              capture_output=True, text=True, timeout=240, env=env)
    except subprocess.TimeoutExpired:
        return "pip could not resolve the pinned requirements within 240 s (index unreachable or too slow)"
    if proc.returncode == 0:
        return None
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")] or proc.stderr.splitlines()[-3:]
    return "the package index does not offer the pinned set: " + " ".join(errors)[:500]


def test_pinned_set_check_names_what_the_index_lacks(tmp_path):
    """An index without the pins (here: an empty one) is reported with the pin pip could not find."""
    empty = tmp_path / "empty-index"
    empty.mkdir()
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(empty)}
    reason = pinned_set_unavailable(tmp_path, env)
    assert reason and "does not offer the pinned set" in reason, reason
    first_pin = next(line for line in (REPO / "requirements-gateway.txt").read_text().splitlines()
                     if re.match(r"[A-Za-z]", line))
    assert first_pin in reason, reason


@pytest.mark.skipif(os.environ.get("TB_DLMS_SKIP_SLOW") == "1", reason="TB_DLMS_SKIP_SLOW=1")
def test_real_virtualenv_install(tmp_path):
    """The production path: a fresh venv with the pinned requirements and a non-editable tb-dlms."""
    unavailable = pinned_set_unavailable(tmp_path)
    if unavailable:
        pytest.skip(unavailable)
    root = tmp_path / "root"
    run("install", "--prefix", str(root), "--python", sys.executable, timeout=300)
    venv_python = paths(root)["app"] / "venv/bin/python"
    assert not (paths(root)["app"] / "venv").is_symlink()
    where = subprocess.run([str(venv_python), "-c", "import tb_dlms, thingsboard_gateway; print(tb_dlms.__file__)"],
                           capture_output=True, text=True, check=True).stdout
    assert str(root) in where, "tb_dlms must be installed into the venv, not imported from the checkout"
    assert not (REPO / "build").exists() or (REPO / "build").stat().st_mtime < (root / "opt").stat().st_mtime


def _env_names(env_file: Path) -> set[str]:
    return set(re.findall(r"^#?([A-Z_][A-Z0-9_]*)=", env_file.read_text(), re.M))


def test_env_file_lists_the_variables_of_the_installed_example(installed):
    names = _env_names(paths(installed)["env"])
    assert {"TB_GATEWAY_TOKEN", "TB_GATEWAY_HOST", "TB_GATEWAY_PORT", "METER4_PASSWORD",
            "METER5_BLOCK_CIPHER_KEY", "METER5_AUTHENTICATION_KEY"} <= names
    assert "METER_PASSWORD" not in names and "ENV_VAR" not in names  # not used / only prose in a comment


def test_install_from_the_users_config_dir(tmp_path):
    """--config-dir installs what the user tested, not the shipped example, and the env file follows it."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "tb_gateway.yaml").write_text((REPO / "config/tb_gateway.yaml").read_text())
    connector = {"name": "DLMS Connector", "devices": [{"deviceName": "Meter A", "connection": {
        "host": "10.0.0.7", "port": 4059, "authentication": "low", "password": "${METER_A_PASSWORD}"}}]}
    (mine / "dlms_connector.json").write_text(json.dumps(connector))
    (mine / "ca.pem").write_text("certificate")
    (mine / "connected_devices.json").write_text("{}")  # the gateway's, not config
    root = tmp_path / "root"
    run("install", "--prefix", str(root), "--venv-from", sys.prefix, "--config-dir", str(mine))
    p = paths(root)
    installed = {f.name for f in p["config"].iterdir()}
    assert installed == {"tb_gateway.yaml", "dlms_connector.json", "ca.pem", "logs.json"}
    for name in ("tb_gateway.yaml", "dlms_connector.json", "ca.pem"):
        assert digest(p["config"] / name) == digest(mine / name), name
        assert mode(p["config"] / name) == 0o640
    assert str(p["logs"]) in (p["config"] / "logs.json").read_text()  # no logs.json given: the default
    names = _env_names(p["env"])
    assert {"TB_GATEWAY_TOKEN", "METER_A_PASSWORD"} <= names and "METER4_PASSWORD" not in names
    # The user edits the installed file, then installs a new version of the tested dir.
    (p["config"] / "dlms_connector.json").write_text("{}")
    connector["devices"][0]["connection"]["password"] = "${METER_B_PASSWORD}"
    (mine / "dlms_connector.json").write_text(json.dumps(connector))
    env_before = p["env"].read_text()
    run("install", "--prefix", str(root), "--venv-from", sys.prefix, "--config-dir", str(mine))
    assert digest(p["config"] / "dlms_connector.json") == digest(mine / "dlms_connector.json")
    assert (p["config"] / "dlms_connector.json.bak").read_text() == "{}"
    assert p["env"].read_text().startswith(env_before)  # only extended, never rewritten
    assert "METER_B_PASSWORD" in _env_names(p["env"])
    status = run("status", "--prefix", str(root))
    assert "config: ca.pem" in status.stdout


def _blocked_for_nobody(python: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("runuser"):
        return False
    return subprocess.run(["runuser", "-u", "nobody", "--", python, "-c", "pass"], capture_output=True).returncode != 0


@pytest.mark.skipif(not _blocked_for_nobody(sys.executable),
                    reason="needs root and a test interpreter that 'nobody' cannot run (e.g. pyenv under /root)")
def test_reused_venv_the_service_user_cannot_run_is_refused(tmp_path):
    proc = run("install", "--prefix", str(tmp_path / "root"), "--venv-from", sys.prefix,
               "--service-user", "nobody", check=False)
    assert proc.returncode != 0
    assert "cannot be run by the service user nobody" in proc.stderr
    assert re.search(r"\(/root\S* is not accessible to it\)", proc.stderr), proc.stderr


@pytest.mark.skipif(not _blocked_for_nobody(sys.executable) or _blocked_for_nobody("/usr/bin/python3"),
                    reason="needs root, a test interpreter 'nobody' cannot run and a /usr/bin/python3 it can")
def test_new_venv_is_built_from_the_system_python(tmp_path):
    scratch = Path(tempfile.mkdtemp(prefix="tb-dlms-setup-"))  # pytest's tmp dirs are 0700 root
    scratch.chmod(0o755)
    try:
        _install_with_blocked_python(tmp_path, scratch / "root")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _install_with_blocked_python(tmp_path: Path, root: Path) -> None:
    # pip is made to fail at once (no index): only the interpreter choice and the venv are under test.
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path)}
    proc = subprocess.run(["bash", str(SCRIPT), "install", "--prefix", str(root), "--python",
                           os.path.realpath(sys.executable), "--service-user", "nobody"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert "cannot be run by the service user nobody" in proc.stderr, proc.stderr
    assert "building the virtualenv with /usr/bin/python3 instead" in proc.stderr, proc.stderr
    venv_python = root / "opt/tb-dlms/venv/bin/python"
    assert os.path.realpath(venv_python) == os.path.realpath("/usr/bin/python3")
    assert subprocess.run(["runuser", "-u", "nobody", "--", str(venv_python), "-c", "pass"]).returncode == 0
