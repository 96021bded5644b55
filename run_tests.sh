#!/usr/bin/env bash
# The project's test command (README "Tests"; .ci/run calls exactly this):
#
#   ./run_tests.sh [pytest args...]
#
# Creates/updates the virtualenv (.venv, via start_gateway.sh --setup-only --dev), makes sure Mosquitto and
# tmux are available for the end-to-end tests (apt-get when root and missing), runs the static checks
# (`ruff check .` and `mypy`, configured in pyproject.toml: any error stops here with exit code 1),
# then runs pytest on tests/. TB_DLMS_SKIP_CHECKS=1 skips the static checks (a quick local re-run).
# Without Mosquitto or tmux those tests are skipped (they fail instead when TB_DLMS_REQUIRE_MOSQUITTO=1, as in CI).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${TB_DLMS_VENV:-$REPO/.venv}"

"$REPO/start_gateway.sh" --setup-only --dev

# Mosquitto for the end-to-end tests, tmux for the demo's 80x24 terminal test.
missing=()
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then missing+=(mosquitto); fi
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "run_tests: installing ${missing[*]} with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "run_tests: ${missing[*]} not found: the tests that need them will be skipped" \
             "(apt-get install ${missing[*]})" >&2
    fi
fi

cd "$REPO"
if [ "${TB_DLMS_SKIP_CHECKS:-}" != 1 ]; then
    # Exit code 1 (not pytest's 5, which .ci/run reads as "no tests collected") on any finding.
    echo "run_tests: ruff check ." >&2
    "$VENV/bin/python" -m ruff check . || { echo "run_tests: ruff found errors (see above)" >&2; exit 1; }
    echo "run_tests: mypy" >&2
    "$VENV/bin/python" -m mypy || { echo "run_tests: mypy found errors (see above)" >&2; exit 1; }
fi
exec "$VENV/bin/python" -m pytest -q "$@"
