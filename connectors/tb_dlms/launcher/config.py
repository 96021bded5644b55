"""Gateway configuration directory handling: YAML -> JSON, env substitution, logs.json.

Users edit ``tb_gateway.yaml``; the gateway 3.8 reads ``tb_gateway.json``. Rule (also in docs/configuration.md):

* **YAML wins.** If ``tb_gateway.yaml`` exists, the gateway's ``tb_gateway.json`` is generated from it
  on every start (``${VAR}`` / ``${VAR:-default}`` substituted from the environment first).
* No YAML: the user's ``tb_gateway.json`` is used (the stock gateway layout works unchanged).
* The config dir is only read: the generated JSON, ``logs.json`` (the user's, else the gateway's
  default) and everything the gateway writes go to ``<work dir>/gateway-config``
  (:mod:`tb_dlms.launcher.runtime_dir`).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..config import env as env_refs
from ..config.gateway_json import GATEWAY_FILE_CONSEQUENCE, read_gateway_json
from .runtime_dir import RuntimeDir

log = logging.getLogger("tb_dlms.launcher")

YAML_NAME = "tb_gateway.yaml"
JSON_NAME = "tb_gateway.json"
LOGS_NAME = "logs.json"
GENERATED_KEY = "_generated"
GENERATED_NOTE = ("Generated from tb_gateway.yaml by tb_dlms.launcher on every start; edit the YAML, "
                  "changes made here are overwritten.")

#: The token placeholder shipped in config/tb_gateway.yaml.
TOKEN_PLACEHOLDER = "YOUR_ACCESS_TOKEN"



class GatewayConfigError(RuntimeError):
    """The gateway's configuration cannot start the gateway (not the connector's per-field
    :class:`tb_dlms.config.ConfigError` records): the message says what to fix."""


def repo_root() -> Path | None:
    """The source checkout this package runs from (``connectors/tb_dlms`` -> repo), if any."""
    candidate = Path(__file__).resolve().parents[3]
    if (candidate / "connectors" / "tb_dlms").is_dir() and (candidate / "pyproject.toml").is_file():
        return candidate
    return None


def resolve_config_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``--config-dir`` > ``$TB_DLMS_CONFIG_DIR`` > ``$TB_GW_CONFIG_DIR`` > ``<repo>/config`` > ``./config``."""
    for candidate in (explicit, os.environ.get("TB_DLMS_CONFIG_DIR"), os.environ.get("TB_GW_CONFIG_DIR")):
        if candidate:
            path = Path(candidate).expanduser().resolve()
            if not path.is_dir():
                raise GatewayConfigError(f"config dir {path} does not exist")
            return path
    root = repo_root()
    if root is not None and (root / "config").is_dir():
        return root / "config"
    path = Path("config").resolve()
    if path.is_dir():
        return path
    raise GatewayConfigError("no config dir found: pass --config-dir DIR "
                             "(containing tb_gateway.yaml or tb_gateway.json)")


def default_work_dir(config_dir: Path) -> Path:
    """Where logs/ and relative storage paths (./data/) go: ``<base>`` for ``<base>/config``, else the dir."""
    return config_dir.parent if config_dir.name == "config" else config_dir


def substitute_env(text: str, env: Mapping[str, str] | None = None) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` outside comment lines (config/env.py's rule);
    an unset VAR without default is an error naming it and the line (never a value)."""
    lines = []
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        if line.lstrip().startswith("#"):
            lines.append(line)
            continue
        try:
            lines.append(env_refs.substitute(line, env))
        except env_refs.UnsetVariable as exc:
            key = line.strip().partition(":")[0].strip() or "?"
            raise GatewayConfigError(f"environment variable {exc.name} is not set (used in {YAML_NAME} line {number}, "
                              f"{key})") from None
    return "".join(lines)


def load_yaml_config(path: Path, env: Mapping[str, str] | None = None) -> dict:
    text = substitute_env(path.read_text(encoding="utf-8"), env)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GatewayConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise GatewayConfigError(f"{path}: expected a mapping at the top level")
    return data


def validate(config: dict, source: Path) -> list[str]:
    """Basic checks; returns warnings, raises GatewayConfigError for what would not start at all."""
    warnings = []
    if not isinstance(config, dict):  # e.g. a top-level array: the gateway would fail on it with no word
        raise GatewayConfigError(f"{source}: must be a JSON object {{...}} at the top level")
    tb = config.get("thingsboard")
    if not isinstance(tb, dict) or not tb.get("host"):
        raise GatewayConfigError(f"{source}: thingsboard.host is required")
    if "storage" not in config or "type" not in config.get("storage", {}):
        raise GatewayConfigError(f"{source}: storage.type is required (sqlite, file or memory)")
    token = (tb.get("security") or {}).get("accessToken")
    token_auth = (tb.get("security") or {}).get("type", "accessToken") == "accessToken"
    if token_auth and token in (None, "", TOKEN_PLACEHOLDER):
        # Refuse rather than connect somewhere with a placeholder token.
        raise GatewayConfigError(f"{source}: no access token: set TB_GATEWAY_TOKEN "
                                 "(or thingsboard.security.accessToken) to the gateway device's access token")
    if tb.get("remoteConfiguration"):
        warnings.append("remoteConfiguration is true: connector configurations come from ThingsBoard (validated "
                        "first); dlms secrets must be ${VAR} references")
    for conn in config.get("connectors", []):
        if conn.get("type") == "dlms" and not conn.get("class"):
            raise GatewayConfigError(f"{source}: the dlms connector entry needs \"class\": \"DLMSConnector\"")
    return warnings


def generated_json(config: dict, source: Path) -> bytes:
    note = GENERATED_NOTE if source.name == YAML_NAME else f"Copied from {source} by tb_dlms.launcher on every start."
    return (json.dumps({GENERATED_KEY: note, **config}, indent=2) + "\n").encode()


def write_json_config(config: dict, path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        fh.write(generated_json(config, Path(YAML_NAME)))
    os.replace(tmp, path)


def is_generated(path: Path) -> bool:
    try:
        return GENERATED_KEY in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


def default_logs_config() -> Path:
    import thingsboard_gateway

    return Path(thingsboard_gateway.__file__).parent / "config" / LOGS_NAME


def ensure_logs_config(config_dir: Path) -> Path:
    target = config_dir / LOGS_NAME
    if not target.exists():
        shutil.copyfile(default_logs_config(), target)
        log.info("No %s in %s: copied the gateway's default", LOGS_NAME, config_dir)
    return target


def load_gateway_config(config_dir: Path, env: Mapping[str, str] | None = None) -> tuple[dict, Path]:
    """The effective main config of ``config_dir`` and the file it came from (nothing is written)."""
    yaml_path, json_path = config_dir / YAML_NAME, config_dir / JSON_NAME
    if yaml_path.exists():
        source, config = yaml_path, load_yaml_config(yaml_path, env)
    elif json_path.exists():
        source = json_path
        config, error = read_gateway_json(json_path, GATEWAY_FILE_CONSEQUENCE)  # the gateway's own rules
        if error is not None:
            raise GatewayConfigError(str(error))
    else:
        raise GatewayConfigError(f"{config_dir} has neither {YAML_NAME} nor {JSON_NAME}")
    for warning in validate(config, source):
        log.warning("%s", warning)
    for conn in config.get("connectors", []):
        conf_file = config_dir / conn.get("configuration", "")
        if conn.get("configuration") and not conf_file.is_file():
            raise GatewayConfigError(f"connector {conn.get('name')!r}: {conf_file} not found")
        if conn.get("type") == "dlms" and conn.get("configuration"):
            # The gateway says only "'str' object has no attribute ..." about a file it cannot parse.
            _, error = read_gateway_json(conf_file)
            if error is not None:
                log.error("connector %r: %s", conn.get("name"), error)
    return config, source


def prepare_config_dir(config_dir: Path, work_dir: Path, env: Mapping[str, str] | None = None) -> RuntimeDir:
    """Build the gateway's directory under ``work_dir`` from ``config_dir`` (which is only read)."""
    config, source = load_gateway_config(config_dir, env)
    runtime = RuntimeDir(config_dir, work_dir)
    runtime.set_connectors(config)
    logs = config_dir / LOGS_NAME
    try:
        runtime.build(generated_json(config, source), logs if logs.is_file() else default_logs_config())
    except OSError as exc:
        raise GatewayConfigError(f"cannot prepare the gateway's directory {runtime.path}: {exc} "
                          "(the work dir must be writable by the service user)") from exc
    log.info("Using %s%s: the gateway runs on %s", source, " (YAML wins)" if source.name == YAML_NAME else "",
             runtime.path)
    return runtime


def yaml_to_json(yaml_path: str | os.PathLike, json_path: str | os.PathLike | None = None,
                 env: Mapping[str, str] | None = None) -> dict:
    """Convert one YAML gateway config to JSON (used by tools and tests)."""
    yaml_path = Path(yaml_path)
    config = load_yaml_config(yaml_path, env)
    validate(config, yaml_path)
    if json_path is not None:
        write_json_config(config, Path(json_path))
    return config


def dump(config: Any) -> str:
    return json.dumps(config, indent=2)
