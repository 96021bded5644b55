"""Connector configuration: one schema for the connector, tests and tools."""
from .errors import ConfigError, ConfigInvalid
from .schema import (
    ConnectorConfig,
    DeviceConfig,
    PointConfig,
    ReportStrategySpec,
    load_connector_config,
    load_connector_config_strict,
    load_connector_file,
    load_handed_over,
    parse_connector_json,
)

__all__ = [
    "ConfigError",
    "ConfigInvalid",
    "ConnectorConfig",
    "DeviceConfig",
    "PointConfig",
    "ReportStrategySpec",
    "load_connector_config",
    "load_connector_config_strict",
    "load_connector_file",
    "load_handed_over",
    "parse_connector_json",
]
