"""The remote-configuration guard on the gateway's RemoteConfigurator (unit level; e2e in tests/e2e)."""
from __future__ import annotations

from tb_dlms.config.secrets import MASK, clear_secrets, mask_clear_secrets
from tb_dlms.launcher import remote_config

CLEAR = {"name": "DLMS", "defaults": {"password": "topsecret"}, "devices": [
    {"deviceName": "M1", "connection": {"host": "h", "authentication": "low", "password": "${PW}"},
     "timeseries": [{"key": "v", "obis": "1.0.32.7.0.255"}]},
    {"deviceName": "M2", "connection": {"host": "h", "authentication": "high_gmac", "security": {
        "systemTitle": "0102030405060708", "blockCipherKey": "00" * 16, "authenticationKey": "${AK}"}},
     "timeseries": [{"key": "v", "obis": "1.0.32.7.0.255"}]}]}


class FakeGateway:
    """The gateway as RemoteConfigurator sees it (``send_attributes``, the connectors by name), not
    as a connector does: tb_dlms.devtools.fake_gateway fakes the other side, so this stays its own."""

    def __init__(self):
        self.sent = []
        self.available_connectors_by_name = {}

    def send_attributes(self, values):
        self.sent.append(values)


class Configurator:
    def __init__(self):
        self._gateway = FakeGateway()
        self.connectors_configuration = [{"type": "dlms", "name": "DLMS", "configuration": "dlms_connector.json"}]
        self.handled = []
        self.reported = []

    def _handle_connector_configuration_update(self, config):
        self.handled.append(config)

    def send_connector_current_configuration(self, config):
        self.reported.append(config)


def test_clear_secrets_named_by_device_and_field_values_never_shown():
    errors = [str(e) for e in clear_secrets(CLEAR)]
    assert errors[0].startswith("defaults.password must be a ${ENV_VAR} reference")
    assert errors[1].startswith('devices[1] "M2": connection.security.blockCipherKey must be')
    assert len(errors) == 2 and "topsecret" not in "".join(errors)
    masked = mask_clear_secrets(CLEAR)
    assert masked["defaults"]["password"] == MASK and masked["devices"][0]["connection"]["password"] == "${PW}"
    assert masked["devices"][1]["connection"]["security"]["blockCipherKey"] == MASK
    assert CLEAR["defaults"]["password"] == "topsecret"  # a copy: the running configuration is untouched


def test_refused_configuration_never_reaches_the_gateway_handler():
    cls = type("C", (Configurator,), {})
    assert remote_config.guard_connector_updates(cls) and not remote_config.guard_connector_updates(cls)
    conf = cls()
    conf._handle_connector_configuration_update({"name": "DLMS", "type": "dlms", "configurationJson": CLEAR})
    assert conf.handled == []
    status = conf._gateway.sent[-1]
    assert status[remote_config.STATUS_KEY] == "refused" and "topsecret" not in str(status)
    # Other connector types pass through untouched.
    conf._handle_connector_configuration_update({"name": "M", "type": "modbus", "configurationJson": {}})
    assert conf.handled[-1]["type"] == "modbus"


def test_valid_update_keeps_the_running_file_name_and_reports_are_masked(monkeypatch):
    monkeypatch.setenv("PW", "x")
    cls = type("C", (Configurator,), {})
    remote_config.guard_connector_updates(cls)
    conf = cls()
    good = {"name": "DLMS", "devices": [CLEAR["devices"][0]]}
    conf._handle_connector_configuration_update({"name": "DLMS", "type": "dlms", "configuration": "dlms.json",
                                                 "configurationJson": good})
    assert conf.handled[-1]["configuration"] == "dlms_connector.json"
    assert conf._gateway.sent[-1][remote_config.STATUS_KEY] == "failed"  # no connector started by the fake
    conf.send_connector_current_configuration({"name": "DLMS", "type": "dlms", "configurationJson": CLEAR})
    assert "topsecret" not in str(conf.reported[-1])


def test_connector_with_remote_configuration_leaves_out_devices_with_clear_secrets(monkeypatch):
    from tb_dlms.config import load_connector_config

    monkeypatch.setenv("PW", "x")
    monkeypatch.setenv("AK", "00" * 16)
    raw = {**CLEAR, "defaults": {}}
    config, errors = load_connector_config(raw, secrets_from_env=True)
    assert [d.name for d in config.devices] == ["M1"] and len(errors) == 1
    config, errors = load_connector_config(raw)
    assert [d.name for d in config.devices] == ["M1", "M2"] and not errors
