"""Validate a gateway config dir with the same code that will load it.

The gateway file is read by the launcher's rules (``tb_gateway.yaml`` wins over ``tb_gateway.json``,
``${VAR}`` substituted) and the connector files by the connector's own schema, so "valid here" and
"starts in production" cannot drift apart. Nothing is written: the launcher regenerates the JSON
at start, a check must not.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError, ConnectorConfig, load_connector_file
from ..config.gateway_json import GATEWAY_FILE_CONSEQUENCE, read_gateway_json
from ..launcher import config as launcher_config

DLMS_TYPE = "dlms"


@dataclass
class GatewayCheck:
    file: Path | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: (connector name, connector file) of every ``dlms`` entry.
    connectors: list[tuple[str, Path]] = field(default_factory=list)
    #: The effective gateway config (``${VAR}`` substituted) when it loaded without error.
    config: dict | None = None

    def as_dict(self) -> dict:
        return {"file": str(self.file) if self.file else None, "ok": not self.errors, "errors": self.errors,
                "warnings": self.warnings}


@dataclass
class ConnectorCheck:
    name: str
    file: Path
    config: ConnectorConfig | None
    errors: list[ConfigError]

    def as_dict(self) -> dict:
        return {"name": self.name, "file": str(self.file), "ok": not self.errors,
                "devices": len(self.config.devices) if self.config else 0,
                "errors": [{"device": e.device_name, "deviceIndex": e.device_index, "path": e.path,
                            "message": e.message, "text": str(e)} for e in self.errors]}


def check_gateway(config_dir: Path) -> GatewayCheck:
    yaml_path, json_path = config_dir / launcher_config.YAML_NAME, config_dir / launcher_config.JSON_NAME
    source = yaml_path if yaml_path.exists() else json_path if json_path.exists() else None
    result = GatewayCheck(source)
    if source is None:
        result.errors.append(f"{config_dir} has neither {yaml_path.name} nor {json_path.name}")
        return result
    try:
        config = _load(source)
    except (launcher_config.GatewayConfigError, ValueError, OSError) as exc:
        result.errors.append(str(exc))
        # An unset ${VAR} (QUICKSTART runs this before its exports) must not hide the meters:
        # read the file once more with placeholders, only to find the connector files.
        fallback = _load_for_connectors(source)
        if fallback is None:
            return result
        config = fallback
    else:
        try:
            result.warnings += launcher_config.validate(config, source)
        except launcher_config.GatewayConfigError as exc:
            result.errors.append(str(exc))
        if not isinstance(config, dict):  # a top-level array: nothing more to read from it
            return result
        result.config = config
    if source is yaml_path and json_path.exists() and not launcher_config.is_generated(json_path):
        # A JSON the launcher wrote itself carries its mark and is simply regenerated: no news.
        result.warnings.append(f"{json_path.name} is ignored: {yaml_path.name} wins and regenerates it on start")
    for entry in config.get("connectors") or []:
        if not isinstance(entry, dict) or entry.get("type") != DLMS_TYPE:
            continue
        name = str(entry.get("name") or "DLMS Connector")
        file = entry.get("configuration")
        if not file:
            result.errors.append(f"connector {name!r}: 'configuration' (the connector file) is missing")
            continue
        result.connectors.append((name, config_dir / file))
    if not result.connectors and not result.errors:
        result.errors.append(f"{source.name} has no connector of type '{DLMS_TYPE}'")
    return result


def _load(source: Path) -> dict:
    if source.name == launcher_config.YAML_NAME:
        return launcher_config.load_yaml_config(source)
    config, error = read_gateway_json(source, GATEWAY_FILE_CONSEQUENCE)  # as the gateway reads it
    if error is not None:
        raise launcher_config.GatewayConfigError(str(error))
    return config


class _Placeholders(dict):
    """The environment, with a visible stand-in for every unset variable."""

    def get(self, name, default=None):
        return os.environ.get(name) or f"<{name} unset>"


def _load_for_connectors(source: Path) -> dict | None:
    try:
        if source.name == launcher_config.YAML_NAME:
            config = launcher_config.load_yaml_config(source, _Placeholders())
        else:
            config = _load(source)
    except (launcher_config.GatewayConfigError, ValueError, OSError):
        return None
    return config if isinstance(config, dict) else None


def check_connector(name: str, path: Path) -> ConnectorCheck:
    config, errors = load_connector_file(path)
    return ConnectorCheck(name, path, config, errors)


def service_user_errors(config_dir: Path, files: list[Path], user: str) -> list[str]:
    """What the service, running as ``user``, could not read: the launcher lists the config dir and
    copies these files into the work dir at every start, and one it cannot read stops the service
    (checked from the modes, so root can answer for the service user)."""
    import grp
    import os
    import pwd
    import stat

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return [f"service user {user!r} does not exist"]
    if entry.pw_uid == 0:
        return []
    gids = set(os.getgrouplist(user, entry.pw_gid)) | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}

    def allowed(path: Path, bits: int) -> bool:
        st = path.stat()
        shift = 6 if st.st_uid == entry.pw_uid else 3 if st.st_gid in gids else 0
        return (stat.S_IMODE(st.st_mode) >> shift) & bits == bits

    errors, config_dir = [], config_dir.resolve()
    for directory in [*reversed(config_dir.parents), config_dir]:
        if not allowed(directory, 1):
            return [f"the service user {user} cannot enter {directory}: it cannot load {config_dir}"]
    if not allowed(config_dir, 4):
        errors.append(f"the service user {user} cannot list {config_dir}")
    for file in files:
        if file.exists() and not allowed(file.resolve(), 4):
            errors.append(f"{file}: not readable by the service user {user}; the service would not start "
                          f"(chgrp {user} and chmod 0640 it)")
    return errors
