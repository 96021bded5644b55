"""Validate a gateway config dir with the same code that will load it.

The gateway file is read by the launcher's rules (``tb_gateway.yaml`` wins over ``tb_gateway.json``,
``${VAR}`` substituted) and the connector files by the connector's own schema, so "valid here" and
"starts in production" cannot drift apart. Nothing is written: the launcher regenerates the JSON
at start, a check must not.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError, ConnectorConfig, load_connector_file
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
    except (launcher_config.ConfigError, ValueError, OSError) as exc:
        result.errors.append(str(exc))
        # An unset ${VAR} (QUICKSTART runs this before its exports) must not hide the meters:
        # read the file once more with placeholders, only to find the connector files.
        config = _load_for_connectors(source)
        if config is None:
            return result
    else:
        result.config = config
        try:
            result.warnings += launcher_config.validate(config, source)
        except launcher_config.ConfigError as exc:
            result.errors.append(str(exc))
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
    return json.loads(source.read_text(encoding="utf-8"))


class _Placeholders(dict):
    """The environment, with a visible stand-in for every unset variable."""

    def get(self, name, default=None):
        return os.environ.get(name) or f"<{name} unset>"


def _load_for_connectors(source: Path) -> dict | None:
    try:
        if source.name == launcher_config.YAML_NAME:
            config = launcher_config.load_yaml_config(source, _Placeholders())
        else:
            config = json.loads(source.read_text(encoding="utf-8"))
    except (launcher_config.ConfigError, ValueError, OSError):
        return None
    return config if isinstance(config, dict) else None


def check_connector(name: str, path: Path) -> ConnectorCheck:
    config, errors = load_connector_file(path)
    return ConnectorCheck(name, path, config, errors)
