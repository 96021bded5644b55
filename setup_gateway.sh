#!/usr/bin/env bash
# Production install of the ThingsBoard IoT Gateway with the DLMS connector (Debian/Ubuntu, as root).
#
#   ./setup_gateway.sh install   [options]   venv, package, config, user, systemd unit (safe to repeat)
#   ./setup_gateway.sh upgrade   [options]   same, for an existing install; restarts a running service
#   ./setup_gateway.sh status    [options]   what is installed, changed config files, service state
#   ./setup_gateway.sh uninstall [options]   remove program and unit; keep changed config, logs, data
#
# Options:
#   --prefix DIR        install everything under DIR (a scratch root for tests); implies --no-systemd
#   --no-systemd        no systemctl, useradd or chown calls (the unit file is still written)
#   --no-venv           do not create or touch the virtualenv
#   --venv-from DIR     use an existing virtualenv (symlinked as the app's venv; nothing installed in it)
#   --python PY         interpreter for the new virtualenv (default python3, >= 3.11); one the service
#                       user cannot execute (pyenv under /root) is replaced by /usr/bin/python3, or refused
#   --config-dir DIR    install the config in DIR (tb_gateway.yaml or .json, connector files, certificates)
#                       instead of the shipped example; files you changed since the last install are kept
#                       as FILE.bak
#   --service-user U    check that U can run the interpreter (default tb-gateway with systemd)
#   --purge             uninstall: also remove config, logs, data and the tb-gateway user
#
# Layout (every path under --prefix when given):
#   /opt/tb-dlms/venv                       virtualenv: requirements-gateway.txt (pinned) + tb-dlms
#   /opt/tb-dlms/bin/tb-dlms-test-config    test_config.py for the installed config (also in /usr/local/bin)
#   /opt/tb-dlms/bin/tb-dlms-fleet          CSV -> dlms_connector.json
#   /etc/thingsboard-gateway/config         tb_gateway.yaml, dlms_connector.json, logs.json (0640 root:tb-gateway)
#   /etc/thingsboard-gateway/tb-gateway.env the ${VAR}s the installed config uses, e.g. TB_GATEWAY_TOKEN (0640)
#   /var/log/thingsboard-gateway            logs;  /var/lib/thingsboard-gateway: work dir, storage (data/),
#                                           gateway-config/ (what the gateway writes; the config dir is read-only)
#   /etc/systemd/system/tb-gateway.service  the unit (KillSignal=SIGINT: clean device disconnect)
#
# Config files are never overwritten once changed: the new default goes next to them as FILE.dist.
# Checksums of what was installed are kept in /opt/tb-dlms/installed-config.sha256.
set -euo pipefail

# Resolve symlinks: the script may be linked from elsewhere (docs tests, /usr/local/sbin).
REPO="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
SERVICE=tb-gateway
USER_NAME=tb-gateway
PREFIX=""
SYSTEMD=1
VENV_MODE=create
VENV_FROM=""
PYTHON="${TB_DLMS_PYTHON:-python3}"
SYSTEM_PYTHON=/usr/bin/python3
PURGE=0
USER_CONFIG=""
CHECK_USER=""

log() { printf 'setup_gateway: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

ACTION="${1:-}"
case "$ACTION" in
    install|upgrade|status|uninstall) shift ;;
    -h|--help|help) usage; exit 0 ;;
    "") usage >&2; exit 64 ;;
    *) log "unknown action $ACTION"; usage >&2; exit 64 ;;
esac
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX="$2"; shift ;;
        --prefix=*) PREFIX="${1#*=}" ;;
        --no-systemd) SYSTEMD=0 ;;
        --no-venv) VENV_MODE=none ;;
        --venv-from) [ $# -ge 2 ] || die "--venv-from needs a directory"; VENV_MODE=reuse; VENV_FROM="$2"; shift ;;
        --python) [ $# -ge 2 ] || die "--python needs an interpreter"; PYTHON="$2"; shift ;;
        --purge) PURGE=1 ;;
        --config-dir) [ $# -ge 2 ] || die "--config-dir needs a directory"; USER_CONFIG="$2"; shift ;;
        --config-dir=*) USER_CONFIG="${1#*=}" ;;
        --service-user) [ $# -ge 2 ] || die "--service-user needs a user name"; CHECK_USER="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) log "unknown option $1"; usage >&2; exit 64 ;;
    esac
    shift
done
if [ -n "$PREFIX" ]; then
    mkdir -p "$PREFIX"
    PREFIX="$(cd "$PREFIX" && pwd)"
    SYSTEMD=0
fi
if [ -n "$USER_CONFIG" ]; then
    [ -d "$USER_CONFIG" ] || die "--config-dir $USER_CONFIG is not a directory"
    USER_CONFIG="$(cd "$USER_CONFIG" && pwd)"
fi
[ -n "$CHECK_USER" ] || { [ "$SYSTEMD" -eq 0 ] || CHECK_USER="$USER_NAME"; }

APP_DIR="$PREFIX/opt/tb-dlms"
VENV="$APP_DIR/venv"
CONF_ROOT="$PREFIX/etc/thingsboard-gateway"
CONFIG_DIR="$CONF_ROOT/config"
ENV_FILE="$CONF_ROOT/tb-gateway.env"
LOG_DIR="$PREFIX/var/log/thingsboard-gateway"
STATE_DIR="$PREFIX/var/lib/thingsboard-gateway"
UNIT_FILE="$PREFIX/etc/systemd/system/$SERVICE.service"
BIN_LINK_DIR="$PREFIX/usr/local/bin"
MANIFEST="$APP_DIR/installed-config.sha256"
VERSION_FILE="$APP_DIR/VERSION"
CONFIG_FILES=(tb_gateway.yaml dlms_connector.json logs.json)

sha() { sha256sum "$1" | cut -d' ' -f1; }
recorded_sha() { [ -f "$MANIFEST" ] && awk -v f="$1" '$2 == f { print $1 }' "$MANIFEST" || true; }
installed_names() {  # what the last install put in CONFIG_DIR (the manifest), else the defaults
    if [ -f "$MANIFEST" ]; then awk '{ print $2 }' "$MANIFEST"; else printf '%s\n' "${CONFIG_FILES[@]}"; fi
}
version() { sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -1; }

need_root() {
    [ "$SYSTEMD" -eq 0 ] || [ "$(id -u)" -eq 0 ] || die "run as root (or use --prefix DIR for a scratch install)"
}

# -- staging: the defaults this version would install, computed from the repository -----------

# The files of --config-dir DIR that make up a config: not what the gateway or an old launcher wrote there.
user_config_files() {
    local f name
    for f in "$USER_CONFIG"/*; do
        [ -f "$f" ] || continue
        name="$(basename "$f")"
        case "$name" in
            connected_devices.json|persistent_keys.json|*.bak|*.tmp|*.dist|*.example|*~) continue ;;
        esac
        # tb_gateway.json generated from the YAML by an older launcher (it carries a "_generated" note).
        if [ "$name" = tb_gateway.json ] && grep -q '"_generated"' "$f"; then continue; fi
        printf '%s\n' "$name"
    done
}

stage_config() {
    local stage="$1" name
    if [ -z "$USER_CONFIG" ]; then
        stage_defaults "$stage"
        return
    fi
    while read -r name; do cp "$USER_CONFIG/$name" "$stage/$name"; done < <(user_config_files)
    [ -e "$stage/tb_gateway.yaml" ] || [ -e "$stage/tb_gateway.json" ] \
        || die "--config-dir $USER_CONFIG has neither tb_gateway.yaml nor tb_gateway.json"
    if [ ! -e "$stage/logs.json" ]; then
        sed -e "s|\"\./logs/|\"$LOG_DIR/|" "$REPO/config/logs.json" > "$stage/logs.json"
    fi
}

stage_defaults() {
    local stage="$1"
    # Absolute storage path: the service's work dir is STATE_DIR, but say it where users look.
    sed -E -e "s|^( *#? *data_(file\|folder)_path:).*|\1 $STATE_DIR/data/|" \
        "$REPO/config/tb_gateway.yaml" > "$stage/tb_gateway.yaml"
    sed -e "s|\"\./logs/|\"$LOG_DIR/|" "$REPO/config/logs.json" > "$stage/logs.json"
    # The gateway writes an "id" back into a connector file that has none, and fails to load the
    # connector when it cannot (the file is read-only for the service): ship one.
    "$(stage_python)" - "$REPO/config/dlms_connector.json.example" "$stage/dlms_connector.json" <<'PY'
import json, sys, uuid
data = json.load(open(sys.argv[1], encoding="utf-8"))
data.setdefault("id", str(uuid.uuid5(uuid.NAMESPACE_URL, "tb-dlms:" + data.get("name", "DLMS Connector"))))
with open(sys.argv[2], "w", encoding="utf-8") as fh:
    json.dump(data, fh, indent=2)
    fh.write("\n")
PY
}

stage_python() {
    if [ -x "$VENV/bin/python" ]; then echo "$VENV/bin/python"; else echo "$PYTHON"; fi
}

# -- steps ----------------------------------------------------------------------------------------

ensure_user() {
    [ "$SYSTEMD" -eq 1 ] || return 0
    if ! getent passwd "$USER_NAME" >/dev/null; then
        log "creating system user $USER_NAME"
        useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "ThingsBoard IoT Gateway" "$USER_NAME"
    fi
}

owner() {  # owner USER:GROUP PATH... (skipped without systemd: scratch roots have no such user)
    local who="$1"; shift
    [ "$SYSTEMD" -eq 1 ] || return 0
    chown "$who" "$@"
}

make_dirs() {
    install -d -m 0755 "$APP_DIR" "$APP_DIR/bin" "$APP_DIR/docs" "$CONF_ROOT" "$(dirname "$UNIT_FILE")" "$BIN_LINK_DIR"
    # Read-only for the service: what the gateway writes goes to STATE_DIR/gateway-config.
    install -d -m 0750 "$CONFIG_DIR"
    install -d -m 0750 "$LOG_DIR" "$STATE_DIR" "$STATE_DIR/data"
    owner "root:$USER_NAME" "$CONFIG_DIR" "$CONF_ROOT"
    chmod 0750 "$CONF_ROOT"
    owner "$USER_NAME:$USER_NAME" "$LOG_DIR" "$STATE_DIR" "$STATE_DIR/data"
}

# Can the service user run PY (a venv's python: its base interpreter and the venv itself)? A venv
# built from pyenv under /root (mode 0700) cannot be: the service then dies with "Permission denied".
# Without a user to check (scratch root without --service-user) or without root, assume it can.
user_can_run() {
    [ -n "$CHECK_USER" ] && [ "$(id -u)" -eq 0 ] && getent passwd "$CHECK_USER" >/dev/null || return 0
    runuser -u "$CHECK_USER" -- "$@" >/dev/null 2>&1
}

# The first directory on the way to PY's real file that the service user cannot enter.
blocking_dir() {
    local dir
    dir="$(dirname "$(readlink -f "$(command -v "$1" || echo "$1")")")"
    while [ "$dir" != / ]; do
        runuser -u "$CHECK_USER" -- test -x "$dir" 2>/dev/null || { echo "$dir"; return; }
        dir="$(dirname "$dir")"
    done
    echo "$(readlink -f "$(command -v "$1" || echo "$1")")"
}

cannot_run_reason() {
    printf '%s cannot be run by the service user %s (%s is not accessible to it)' \
        "$1" "$CHECK_USER" "$(blocking_dir "$1")"
}

choose_python() {
    local probe='import sys; sys.exit(sys.version_info < (3, 11))'
    "$PYTHON" -c "$probe" 2>/dev/null \
        || die "$PYTHON is missing or older than 3.11 (apt-get install python3 python3-venv)"
    user_can_run "$PYTHON" -c "$probe" && return 0
    local reason
    reason="$(cannot_run_reason "$PYTHON")"
    if [ "$PYTHON" != "$SYSTEM_PYTHON" ] && "$SYSTEM_PYTHON" -c "$probe" 2>/dev/null \
            && user_can_run "$SYSTEM_PYTHON" -c "$probe"; then
        log "$reason: building the virtualenv with $SYSTEM_PYTHON instead"
        PYTHON="$SYSTEM_PYTHON"
        return 0
    fi
    die "$reason, and $SYSTEM_PYTHON (>= 3.11) is not usable either: pass --python with an interpreter outside /root (apt-get install python3 python3-venv)"
}

ensure_venv() {
    case "$VENV_MODE" in
        none) log "virtualenv left alone (--no-venv)"; return 0 ;;
        reuse)
            [ -x "$VENV_FROM/bin/python" ] || die "--venv-from $VENV_FROM: no bin/python there"
            "$VENV_FROM/bin/python" -c 'import tb_dlms, thingsboard_gateway' 2>/dev/null \
                || die "--venv-from $VENV_FROM: tb_dlms and thingsboard_gateway must be importable there"
            user_can_run "$VENV_FROM/bin/python" -c 'import tb_dlms, thingsboard_gateway' \
                || die "--venv-from $VENV_FROM: $(cannot_run_reason "$VENV_FROM/bin/python"); build one with an interpreter it can run (drop --venv-from)"
            if [ -d "$VENV" ] && [ ! -L "$VENV" ]; then rm -rf "$VENV"; fi
            ln -sfn "$(cd "$VENV_FROM" && pwd)" "$VENV"
            log "using existing virtualenv $VENV_FROM"
            return 0 ;;
    esac
    choose_python
    [ -L "$VENV" ] && rm -f "$VENV"
    if [ -x "$VENV/bin/python" ] && ! user_can_run "$VENV/bin/python" -c pass; then
        log "$(cannot_run_reason "$VENV/bin/python"): rebuilding $VENV with $PYTHON"
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv $VENV"
        "$PYTHON" -m venv "$VENV" || die "cannot create a virtualenv (apt-get install python3-venv)"
    fi
    local pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
    log "installing pinned requirements into $VENV"
    # Test tools are pinned for development; the service does not need them.
    grep -viE '^(pytest|hypothesis)==' "$REPO/requirements-gateway.txt" > "$APP_DIR/requirements.txt"
    "${pip[@]}" -r "$APP_DIR/requirements.txt"
    # paho-mqtt and tb-paho-mqtt-client share the 'paho' package: paho-mqtt's files win (as in start_gateway.sh).
    "${pip[@]}" --no-deps --force-reinstall "$(grep -i '^paho-mqtt==' "$REPO/requirements-gateway.txt")"
    log "installing tb-dlms $(version) into $VENV"
    # Build from a clean copy: an in-tree build would write build/ and egg-info into the checkout.
    local src
    src="$(mktemp -d)"
    cp "$REPO/pyproject.toml" "$REPO/README.md" "$src/"
    mkdir -p "$src/connectors"
    tar -C "$REPO/connectors" --exclude=__pycache__ --exclude='*.egg-info' -cf - tb_dlms | tar -C "$src/connectors" -xf -
    "${pip[@]}" --no-deps --force-reinstall "$src"
    rm -rf "$src"
    "$VENV/bin/python" -c 'import tb_dlms.gateway.connector' || die "tb_dlms does not import in $VENV"
}

install_program_files() {
    local CHECK_AS=""
    [ "$SYSTEMD" -eq 0 ] || CHECK_AS=" --service-user $USER_NAME"
    install -m 0755 "$REPO/test_config.py" "$APP_DIR/test_config.py"
    cat > "$APP_DIR/bin/tb-dlms-test-config" <<EOF
#!/bin/sh
# Check $CONFIG_DIR and probe every meter (test_config.py as the venv's console script); reads $ENV_FILE.
[ -r "$ENV_FILE" ] && { set -a; . "$ENV_FILE"; set +a; }
exec "$VENV/bin/tb-dlms-test-config" --config-dir "$CONFIG_DIR"$CHECK_AS "\$@"
EOF
    cat > "$APP_DIR/bin/tb-dlms-fleet" <<EOF
#!/bin/sh
# CSV of meters -> dlms_connector.json (tb-dlms-fleet --help): the venv's console script.
exec "$VENV/bin/tb-dlms-fleet" "\$@"
EOF
    chmod 0755 "$APP_DIR/bin/tb-dlms-test-config" "$APP_DIR/bin/tb-dlms-fleet"
    ln -sfn "$APP_DIR/bin/tb-dlms-test-config" "$BIN_LINK_DIR/tb-dlms-test-config"
    ln -sfn "$APP_DIR/bin/tb-dlms-fleet" "$BIN_LINK_DIR/tb-dlms-fleet"
    for doc in "$REPO/ARCHITECTURE.md" "$REPO"/docs/*.md; do
        [ -f "$doc" ] && install -m 0644 "$doc" "$APP_DIR/docs/"
    done
    version > "$VERSION_FILE"
}

# Like dpkg conffiles: replace a file only while it is still what we installed. Files given with
# --config-dir are what the user asked for: they replace a changed file, which is kept as FILE.bak.
install_config() {
    local stage name target new old current manifest_new
    stage="$(mktemp -d)"
    stage_config "$stage"
    manifest_new="$(mktemp)"
    for target in "$stage"/*; do
        name="$(basename "$target")"
        target="$CONFIG_DIR/$name"
        new="$(sha "$stage/$name")"
        old="$(recorded_sha "$name")"
        if [ ! -e "$target" ]; then
            install -m 0640 "$stage/$name" "$target"
            log "installed $target"
        else
            current="$(sha "$target")"
            if [ "$current" = "$new" ]; then
                :
            elif [ -n "$old" ] && [ "$current" = "$old" ]; then
                install -m 0640 "$stage/$name" "$target"
                log "updated $target (it was unchanged since the last install)"
            elif [ -n "$USER_CONFIG" ]; then
                install -m 0640 "$target" "$target.bak"
                install -m 0640 "$stage/$name" "$target"
                log "installed $target from $USER_CONFIG; your previous version is $target.bak"
            else
                install -m 0640 "$stage/$name" "$target.dist"
                owner "root:$USER_NAME" "$target.dist"
                log "kept your $target; the new default is $target.dist (compare and merge)"
            fi
            if [ "$(sha "$target")" = "$new" ] && [ -e "$target.dist" ]; then rm -f "$target.dist"; fi
        fi
        owner "root:$USER_NAME" "$target"
        chmod 0640 "$target"
        printf '%s  %s\n' "$new" "$name" >> "$manifest_new"
    done
    install -m 0644 "$manifest_new" "$MANIFEST"
    rm -rf "$manifest_new" "$stage"
    write_env_file
}

# The ${VAR}s of the installed config: the launcher's rule for tb_gateway.yaml (any ${VAR} or
# ${VAR:-default} outside comment lines), the connector's for JSON files (a whole value "${VAR}" or
# "${VAR:-default}"; a JSON default is a secret and is not copied into the env file).
# Prints NAME<TAB>DEFAULT<TAB>FILE, one line per variable.
config_vars() {
    "$(stage_python)" - "$CONFIG_DIR" <<'PY'
import json, pathlib, re, sys
var = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")  # tb_dlms.config.env.REFERENCE
whole = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}$")  # tb_dlms.config.env.REFERENCE, the whole value
found = {}


def strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)
    elif isinstance(node, str):
        yield node


for path in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    if path.suffix in (".yaml", ".yml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.lstrip().startswith("#"):
                for m in var.finditer(line):
                    found.setdefault(m.group(1), (m.group(2) or "", path.name))
    elif path.suffix == ".json" and path.name != "logs.json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        for text in strings(data):
            m = whole.match(text)
            if m:
                found.setdefault(m.group(1), ("", path.name))
for name, (default, source) in found.items():
    print(f"{name}\t{default}\t{source}")
PY
}

# Created once, then only extended: a variable the config uses that the file does not name yet is
# appended (commented out), so the file always lists what the installed config reads.
write_env_file() {
    local name default source vars added=0
    if [ ! -e "$ENV_FILE" ]; then
        install -m 0640 /dev/null "$ENV_FILE"
        cat > "$ENV_FILE" <<'EOF'
# Environment of tb-gateway.service (secrets: keep this file 0640 root:tb-gateway).
# The ${VAR}s the installed config uses, listed by setup_gateway.sh: uncomment and set them. The
# service does not start while one without a default is unset (TB_GATEWAY_TOKEN: the gateway
# device's access token, ThingsBoard: Entities > Gateways).
EOF
        log "installed $ENV_FILE: set TB_GATEWAY_TOKEN there"
    fi
    vars="$(config_vars)" || die "cannot list the \${VAR}s of $CONFIG_DIR"
    while IFS=$'\t' read -r name default source; do
        [ -n "$name" ] || continue
        grep -Eq "^[[:space:]]*#?[[:space:]]*(export[[:space:]]+)?$name=" "$ENV_FILE" && continue
        if [ -n "$default" ]; then
            printf '# used by %s (default %s while unset)\n#%s=%s\n' "$source" "$default" "$name" "$default"
        else
            printf '# used by %s (required)\n#%s=\n' "$source" "$name"
        fi >> "$ENV_FILE"
        added=$((added + 1))
    done <<< "$vars"
    [ "$added" -eq 0 ] || log "listed $added variable(s) of the config in $ENV_FILE"
    owner "root:$USER_NAME" "$ENV_FILE"
    chmod 0640 "$ENV_FILE"
}

write_unit() {
    sed -e "s|@APP_DIR@|$APP_DIR|g" -e "s|@CONFIG_DIR@|$CONFIG_DIR|g" -e "s|@LOG_DIR@|$LOG_DIR|g" \
        -e "s|@STATE_DIR@|$STATE_DIR|g" -e "s|@ENV_FILE@|$ENV_FILE|g" -e "s|@USER@|$USER_NAME|g" \
        -e "s|@GROUP@|$USER_NAME|g" "$REPO/packaging/tb-gateway.service.in" > "$UNIT_FILE.tmp"
    chmod 0644 "$UNIT_FILE.tmp"
    mv -f "$UNIT_FILE.tmp" "$UNIT_FILE"
    if [ "$SYSTEMD" -eq 1 ]; then
        systemctl daemon-reload
        systemctl enable "$SERVICE" >/dev/null 2>&1 || log "warning: systemctl enable $SERVICE failed"
    fi
}

do_install() {
    need_root
    ensure_user
    make_dirs
    ensure_venv
    install_program_files
    install_config
    write_unit
    log "installed tb-dlms $(version) (${PREFIX:-/})"
    if [ "$SYSTEMD" -eq 1 ]; then
        if [ "$ACTION" = upgrade ]; then
            systemctl try-restart "$SERVICE" && log "restarted $SERVICE if it was running"
        else
            log "next: set TB_GATEWAY_TOKEN in $ENV_FILE, describe meters in $CONFIG_DIR/dlms_connector.json,"
            log "      run $APP_DIR/bin/tb-dlms-test-config, then: systemctl start $SERVICE"
        fi
    fi
}

do_status() {
    local rc=0 name target rec
    if [ ! -f "$VERSION_FILE" ]; then
        echo "tb-dlms: not installed under ${PREFIX:-/}"
        return 3
    fi
    echo "tb-dlms $(cat "$VERSION_FILE") installed in $APP_DIR"
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import tb_dlms, thingsboard_gateway' 2>/dev/null; then
        echo "venv: $VENV ($("$VENV/bin/python" -c 'import importlib.metadata as m; print("thingsboard-gateway", m.version("thingsboard-gateway"))'))"
    else
        echo "venv: $VENV MISSING or broken"; rc=1
    fi
    for name in $(installed_names); do
        target="$CONFIG_DIR/$name"
        rec="$(recorded_sha "$name")"
        if [ ! -e "$target" ]; then
            echo "config: $name missing"; rc=1
        elif [ -n "$rec" ] && [ "$(sha "$target")" = "$rec" ]; then
            echo "config: $name default"
        else
            echo "config: $name modified"
        fi
        [ -e "$target.dist" ] && echo "config: $name.dist pending (new default to merge)"
        if [ -e "$target" ] && [ "$(stat -c %a "$target")" != 640 ]; then
            echo "config: $name mode $(stat -c %a "$target"), expected 640"; rc=1
        fi
    done
    [ -f "$UNIT_FILE" ] && echo "unit: $UNIT_FILE" || { echo "unit: MISSING"; rc=1; }
    if [ "$SYSTEMD" -eq 1 ]; then
        echo "service: $(systemctl is-enabled "$SERVICE" 2>/dev/null || true), $(systemctl is-active "$SERVICE" 2>/dev/null || true)"
    fi
    return "$rc"
}

do_uninstall() {
    need_root
    local name target rec
    if [ "$SYSTEMD" -eq 1 ] && [ -f "$UNIT_FILE" ]; then
        systemctl disable --now "$SERVICE" >/dev/null 2>&1 || true
    fi
    rm -f "$UNIT_FILE" "$BIN_LINK_DIR/tb-dlms-test-config" "$BIN_LINK_DIR/tb-dlms-fleet"
    [ "$SYSTEMD" -eq 1 ] && systemctl daemon-reload
    if [ "$PURGE" -eq 1 ]; then
        rm -rf "$CONF_ROOT" "$LOG_DIR" "$STATE_DIR"
        if [ "$SYSTEMD" -eq 1 ] && getent passwd "$USER_NAME" >/dev/null; then userdel "$USER_NAME" || true; fi
        log "purged config, logs, data"
    else
        for name in $(installed_names); do
            target="$CONFIG_DIR/$name"
            rec="$(recorded_sha "$name")"
            rm -f "$target.dist"
            if [ -e "$target" ] && [ -n "$rec" ] && [ "$(sha "$target")" = "$rec" ]; then
                rm -f "$target"
            elif [ -e "$target" ]; then
                log "kept $target (changed by you)"
            fi
        done
        log "kept $ENV_FILE, $LOG_DIR and $STATE_DIR (use --purge to remove them)"
    fi
    # A reused venv is a symlink: remove the link, never what it points to.
    if [ -L "$VENV" ]; then rm -f "$VENV"; fi
    rm -rf "$APP_DIR"
    log "uninstalled tb-dlms (${PREFIX:-/})"
}

case "$ACTION" in
    install) do_install ;;
    upgrade)
        [ -f "$VERSION_FILE" ] || die "nothing to upgrade under ${PREFIX:-/}: run install"
        do_install ;;
    status) rc=0; do_status || rc=$?; exit "$rc" ;;
    uninstall) do_uninstall ;;
esac
