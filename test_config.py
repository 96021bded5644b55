#!/usr/bin/env python3
"""Check the gateway config and probe every meter before a deploy: ``python3 test_config.py --help``.

A thin entry point so it runs from a checkout (without installing the package) and from an
installed location alike; the logic lives in ``tb_dlms.tools.check``.

Run with an interpreter that lacks the gateway's packages (the system ``python3`` the docs name),
it re-executes itself in the project's virtualenv (``$TB_DLMS_VENV``, else ``.venv`` next to this
file), creating it first with ``start_gateway.sh --setup-only`` when it does not exist: the
packages it needs (thingsboard-gateway, gurux-dlms) are pinned there, not on the system.
"""
import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: What the checks import; one missing means "wrong interpreter", not a bug.
NEEDED = ("thingsboard_gateway", "gurux_dlms", "yaml", "paho")
#: Set when we re-executed, so a virtualenv that still lacks a package cannot loop.
REEXEC_MARK = "TB_DLMS_TEST_CONFIG_REEXEC"
#: EX_UNAVAILABLE (sysexits.h): distinct from the check's own exit codes (0-3, 64).
EXIT_NO_ENV = 69


def _fail(message: str) -> None:
    print(f"test_config.py: {message}", file=sys.stderr)
    sys.exit(EXIT_NO_ENV)


def _missing() -> list[str]:
    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


def _reexec_in_venv(missing: list[str]) -> None:
    """Replace this process by the project's virtualenv Python running this script; never returns."""
    venv = Path(os.environ.get("TB_DLMS_VENV") or HERE / ".venv")
    python = venv / "bin" / "python"
    why = f"{sys.executable} lacks {', '.join(missing)}"
    if os.environ.get(REEXEC_MARK) or Path(sys.prefix).resolve() == venv.resolve():
        _fail(f"{why}, even in the virtualenv {venv}: run ./start_gateway.sh --setup-only "
                 "to repair it, or install requirements-gateway.txt into this interpreter")
    if not python.exists():
        setup = HERE / "start_gateway.sh"
        if not setup.exists():
            _fail(f"{why} and there is no virtualenv at {venv}: run it with the Python that "
                     "has the gateway installed (e.g. /opt/tb-dlms/venv/bin/python), or set TB_DLMS_VENV")
        print(f"test_config.py: {why}; creating the project's virtualenv {venv} with "
              f"{setup.name} --setup-only (first use only, takes a minute)", file=sys.stderr, flush=True)
        import subprocess

        code = subprocess.call([str(setup), "--setup-only"], cwd=HERE, stdout=sys.stderr)
        if code != 0 or not python.exists():
            _fail(f"{setup.name} --setup-only failed (exit code {code}); see its output above")
    print(f"test_config.py: {why}; running in the virtualenv {venv}", file=sys.stderr, flush=True)
    os.environ[REEXEC_MARK] = "1"
    try:
        os.execv(python, [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])
    except OSError as exc:
        _fail(f"cannot run {python}: {exc}")


if __name__ == "__main__":
    _gaps = _missing()
    if _gaps:
        _reexec_in_venv(_gaps)

try:
    import tb_dlms  # noqa: F401
except ImportError:  # a checkout that was not pip-installed
    sys.path.insert(0, str(HERE / "connectors"))

from tb_dlms.tools.check import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="test_config.py"))
