"""Remote configuration of the dlms connector through the gateway's own protocol, checked first.

ThingsBoard's gateway UI writes a shared attribute named after the connector (``name``, ``type``,
``class``, ``configurationJson``, ``logLevel``, ...). The 3.8.5 ``RemoteConfigurator`` then writes the
file, stops the running connector, removes its devices and starts a new one, whatever the new
configuration holds: a typo would stop every meter, and nothing would tell the UI why. Here, for
connectors of type ``dlms`` only:

* the configuration is validated with our schema (secrets must be ``${VAR}`` references) BEFORE
  anything stops; with any error it is refused, the running connector keeps polling, and the errors
  (device and field named) go to ThingsBoard as client attributes of the gateway device
  (``dlmsConfigurationStatus`` / ``dlmsConfigurationErrors``) and into the connector's log (the UI's
  per-connector error count, and its remote log when enabled);
* the file written is the one the running connector uses: the UI names it after the connector in
  camel case (``dlmsConnector.json``), which for an existing custom connector would leave the
  gateway reloading the old file;
* the connector configuration the gateway reports to ThingsBoard at start has clear secrets masked
  (``***``): references travel, values stay on the gateway host.
"""
from __future__ import annotations

import logging
from typing import Any

from ..config.schema import load_connector_config
from ..config.secrets import mask_clear_secrets

log = logging.getLogger("tb_dlms.launcher")

#: The gateway version whose RemoteConfigurator internals this patch was written against.
PATCHED_VERSION = "3.8.5"
CONNECTOR_TYPE = "dlms"
_MARK = "_tb_dlms_guarded"

#: Client attributes of the gateway device about the last remote configuration of a dlms connector.
STATUS_KEY = "dlmsConfigurationStatus"  # "applied", "refused" or "failed"
ERRORS_KEY = "dlmsConfigurationErrors"  # list of messages, empty when applied
CONNECTOR_KEY = "dlmsConfigurationConnector"  # connector name the status is about
METERS_KEY = "dlmsConnectorMeters"  # meters polled by that connector after the change
REMOTE_KEYS = (STATUS_KEY, ERRORS_KEY, CONNECTOR_KEY, METERS_KEY)
#: At most this many messages go into the attribute (the count says how many there were).
MAX_REPORTED_ERRORS = 50


def review(configuration_json: Any) -> list[str]:
    """Every problem of a configuration received from ThingsBoard (empty: it may replace the running one)."""
    _, errors = load_connector_config(configuration_json, secrets_from_env=True)
    return [str(e) for e in errors]


def report(gateway, connector: str, status: str, errors: list[str], meters: int | None = None) -> None:
    shown = errors[:MAX_REPORTED_ERRORS]
    if len(errors) > len(shown):
        shown.append(f"... and {len(errors) - len(shown)} more")
    values: dict[str, Any] = {STATUS_KEY: status, ERRORS_KEY: shown, CONNECTOR_KEY: connector}
    if meters is not None:
        values[METERS_KEY] = meters
    try:
        gateway.send_attributes(values)
    except Exception as exc:  # noqa: BLE001 - offline: the log below still has it
        log.warning("Remote configuration status of %s not sent to ThingsBoard: %s", connector, exc)


def _configured_file(configurator, config: dict) -> str | None:
    """The file of the already configured connector this update is about (by id, else by name)."""
    wanted_id = (config.get("configurationJson") or {}).get("id")
    for entry in configurator.connectors_configuration:
        if entry.get("type") != CONNECTOR_TYPE:
            continue
        if (wanted_id and entry.get("id") == wanted_id) or entry.get("name") == config.get("name"):
            return entry.get("configuration")
    return None


def _refuse(gateway, name: str, errors: list[str]) -> None:
    # The connector's own logger: counted in the UI's "errors" column (<name>_ERRORS_COUNT) and
    # sent with the remote log when enabled.
    connector_log = logging.getLogger(name)
    connector_log.error("Remote configuration refused, the running configuration keeps running "
                        "(%d error(s)): %s", len(errors), "; ".join(errors[:MAX_REPORTED_ERRORS]))
    report(gateway, name, "refused", errors)


def guard_connector_updates(configurator_cls) -> bool:
    original = getattr(configurator_cls, "_handle_connector_configuration_update", None)
    original_send = getattr(configurator_cls, "send_connector_current_configuration", None)
    if original is None or original_send is None or getattr(original, _MARK, False):
        return False

    def handle(self, config):
        if not isinstance(config, dict) or config.get("type") != CONNECTOR_TYPE:
            return original(self, config)
        name = config.get("name") if isinstance(config.get("name"), str) else "dlms connector"
        errors = review(config.get("configurationJson"))
        if errors:
            _refuse(self._gateway, name, errors)
            return None
        existing = _configured_file(self, config)
        if existing:
            config["configuration"] = existing
        original(self, config)
        connector = self._gateway.available_connectors_by_name.get(name)
        if connector is None or connector.is_stopped():
            report(self._gateway, name, "failed", ["the gateway did not start the connector: see its service log"])
        else:
            report(self._gateway, name, "applied", [], meters=len(getattr(connector, "devices", {}) or {}))
        return None

    def send(self, connector_configuration):
        if isinstance(connector_configuration, dict) and connector_configuration.get("type") == CONNECTOR_TYPE:
            connector_configuration = {
                **connector_configuration,
                "configurationJson": mask_clear_secrets(connector_configuration.get("configurationJson") or {})}
        return original_send(self, connector_configuration)

    setattr(handle, _MARK, True)
    configurator_cls._handle_connector_configuration_update = handle
    configurator_cls.send_connector_current_configuration = send
    return True


def gateway_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("thingsboard_gateway")
    except Exception:  # noqa: BLE001 - metadata missing
        return None


def apply() -> bool:
    """Install the guard on the gateway's RemoteConfigurator; only on the version it was written for."""
    found = gateway_version()
    if found != PATCHED_VERSION:
        log.warning("Remote configuration guard NOT installed: written for thingsboard-gateway %s, found %s "
                    "(keep remoteConfiguration false)", PATCHED_VERSION, found)
        return False
    from thingsboard_gateway.tb_utility.tb_gateway_remote_configurator import RemoteConfigurator

    return guard_connector_updates(RemoteConfigurator)
