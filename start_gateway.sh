#!/usr/bin/env bash
# Run the ThingsBoard IoT Gateway with the DLMS/COSEM connector, in the foreground.
#
#   ./start_gateway.sh                      gateway with ./config (tb_gateway.yaml + dlms_connector.json)
#   ./start_gateway.sh --config-dir DIR     gateway with another config dir
#   ./start_gateway.sh --demo [--duration N] [--keep] [--debug]
#                                           everything local: Mosquitto + simulated meters + gateway +
#                                           a fake ThingsBoard printing a live table; Ctrl-C stops it all
#   ./start_gateway.sh --setup-only         only create/update the virtualenv
#   ./start_gateway.sh --setup-only --dev   ... and install requirements-dev.txt (ruff, mypy; run_tests.sh)
#
# First use creates a virtualenv (.venv in the repository, or $TB_DLMS_VENV) and installs
# requirements-gateway.txt and this package (pip install -e .). The demo installs mosquitto with
# apt-get when it is missing (needs root). Environment: TB_GATEWAY_TOKEN, TB_GATEWAY_HOST,
# TB_GATEWAY_PORT (see config/tb_gateway.yaml), TB_DLMS_PYTHON (interpreter for the venv),
# TB_DLMS_VENV (virtualenv location), TB_DLMS_SKIP_SETUP=1 (use that virtualenv as it is).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${TB_DLMS_VENV:-$REPO/.venv}"
PY="$VENV/bin/python"

log() { printf 'start_gateway: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else return 1; fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: please install $* yourself"
    log "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "${TB_DLMS_APT_UPDATED:-}" ]; then
        as_root apt-get update -qq || die "apt-get update failed (run as root?)"
        export TB_DLMS_APT_UPDATED=1
    fi
    as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null || die "apt-get install $* failed (run as root?)"
}

find_mosquitto() {
    command -v mosquitto 2>/dev/null || { [ -x /usr/sbin/mosquitto ] && echo /usr/sbin/mosquitto; } || true
}

ensure_mosquitto() {
    if [ -z "$(find_mosquitto)" ]; then
        apt_install mosquitto
        # The Debian package starts a system broker on port 1883; we run our own, so leave it alone.
    fi
    [ -n "$(find_mosquitto)" ] || die "mosquitto is not installed"
}

requirements_stamp() {
    cat "$REPO/requirements-gateway.txt" "$REPO/pyproject.toml" | sha256sum | cut -d' ' -f1
}

ensure_venv() {
    local base="${TB_DLMS_PYTHON:-python3}" stamp="$VENV/.tb-dlms-installed"
    if [ "${TB_DLMS_SKIP_SETUP:-}" = 1 ]; then
        # Use $TB_DLMS_VENV as it is (tests run the script inside their own environment).
        [ -x "$PY" ] || die "TB_DLMS_SKIP_SETUP=1 but $PY does not exist"
        return 0
    fi
    if [ ! -x "$PY" ]; then
        command -v "$base" >/dev/null 2>&1 || apt_install python3 python3-venv
        "$base" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || die "$base is older than Python 3.11 (Debian 12+/Ubuntu 24.04+; or set TB_DLMS_PYTHON)"
        log "creating virtualenv $VENV"
        if ! "$base" -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            apt_install python3-venv
            "$base" -m venv "$VENV" || die "cannot create a virtualenv with $base"
        fi
    fi
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(requirements_stamp)" ]; then
        log "installing requirements-gateway.txt and tb-dlms into $VENV (first use; takes a minute)"
        "$PY" -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel >/dev/null || true
        "$PY" -m pip install -q --disable-pip-version-check -r "$REPO/requirements-gateway.txt"
        # paho-mqtt and tb-paho-mqtt-client share the 'paho' package: make paho-mqtt's files win
        # deterministically (the combination the project is tested with).
        "$PY" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall \
            "$(grep -i '^paho-mqtt==' "$REPO/requirements-gateway.txt")"
        "$PY" -m pip install -q --disable-pip-version-check --no-deps -e "$REPO"
        requirements_stamp > "$stamp"
    fi
    # --dev (run_tests.sh): the pinned checks too (ruff, mypy); their own stamp, so that a plain setup
    # and a test run do not reinstall each other's packages.
    local dev_stamp="$VENV/.tb-dlms-dev-installed" dev_hash
    dev_hash="$(sha256sum "$REPO/requirements-dev.txt" | cut -d' ' -f1)"
    if [ "$DEV" = 1 ] && { [ ! -f "$dev_stamp" ] || [ "$(cat "$dev_stamp")" != "$dev_hash" ]; }; then
        log "installing requirements-dev.txt (ruff, mypy) into $VENV"
        "$PY" -m pip install -q --disable-pip-version-check -r "$REPO/requirements-dev.txt"
        echo "$dev_hash" > "$dev_stamp"
    fi
}

MODE=gateway
DEV=0
CONFIG_DIR=""
DEMO_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --demo) MODE=demo ;;
        --setup-only) MODE=setup ;;
        --dev) DEV=1 ;;
        --config-dir) [ $# -ge 2 ] || die "--config-dir needs a directory"; CONFIG_DIR="$2"; shift ;;
        --config-dir=*) CONFIG_DIR="${1#*=}" ;;
        --duration) [ $# -ge 2 ] || die "--duration needs seconds"; DEMO_ARGS+=(--duration "$2"); shift ;;
        --duration=*) DEMO_ARGS+=(--duration "${1#*=}") ;;
        --keep|--debug) DEMO_ARGS+=("$1") ;;
        --connector-config) [ $# -ge 2 ] || die "--connector-config needs a file"; DEMO_ARGS+=(--connector-config "$2"); shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

ensure_venv

case "$MODE" in
    setup)
        log "virtualenv ready: $VENV"
        ;;
    gateway)
        [ ${#DEMO_ARGS[@]} -eq 0 ] || die "--duration/--keep/--debug/--connector-config are demo options (add --demo)"
        # exec: the gateway gets Ctrl-C (SIGINT) directly and disconnects its devices cleanly.
        exec "$PY" -m tb_dlms.launcher --config-dir "${CONFIG_DIR:-$REPO/config}"
        ;;
    demo)
        ensure_mosquitto
        export MOSQUITTO="$(find_mosquitto)"
        if [ -n "$CONFIG_DIR" ]; then
            DEMO_ARGS=(--connector-config "$CONFIG_DIR/dlms_connector.json" "${DEMO_ARGS[@]}")
        fi
        PIDFILE="$(mktemp -t tb-dlms-demo-pids.XXXXXX)"
        export TB_DLMS_DEMO_PIDFILE="$PIDFILE"
        cleanup() {
            # The demo stops its children itself; this catches what is left if it was killed.
            local pid
            if [ -f "$PIDFILE" ]; then
                while read -r pid; do
                    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
                done < "$PIDFILE"
                rm -f "$PIDFILE"
            fi
        }
        trap cleanup EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
        rc=0
        (cd "$REPO" && "$PY" -m tb_dlms.devtools.demo "${DEMO_ARGS[@]}") || rc=$?
        exit "$rc"
        ;;
esac
