"""``${VAR}`` and ``${VAR:-default}``: one resolver (config/env.py) for the YAML and the connector JSON."""
from __future__ import annotations

import pytest

from tb_dlms.config import env, load_connector_config
from tb_dlms.config.secrets import clear_secrets, mask_clear_secrets
from tb_dlms.devtools.meters import simulator_specs
from tb_dlms.launcher import config as launcher_config

SECRET = "s3cr3t-value"
POINTS = [{"key": "v", "obis": "1.0.32.7.0.255"}]


def low_meter(password: str, **connection: object) -> dict:
    return {"deviceName": "Meter 1", "connection": {"host": "127.0.0.1", "port": 4059, "authentication": "low",
                                                   "password": password, **connection},
            "timeseries": POINTS}


def test_reference_syntax() -> None:
    assert env.reference("${PW}") == env.Reference("PW")
    assert env.reference("${PW:-x y}") == env.Reference("PW", "x y")
    assert env.reference("${PW:-}") == env.Reference("PW", "")
    for not_a_reference in ("plain", "${PW}x", "x${PW}", "${1PW}", "$PW", None, 5):
        assert env.reference(not_a_reference) is None


def test_resolution_rules() -> None:
    environ = {"SET": "1", "EMPTY": ""}
    assert env.resolve("${SET:-2}", environ) == "1"
    assert env.resolve("${EMPTY:-3}", environ) == "3"
    assert env.resolve("${UNSET:-4}", environ) == "4"
    assert env.resolve("plain ${UNSET}", environ) == "plain ${UNSET}"  # only whole values
    assert env.substitute("a: ${SET}, b: ${UNSET:-5}", environ) == "a: 1, b: 5"
    with pytest.raises(env.UnsetVariable) as raised:
        env.substitute("a: ${EMPTY}", environ)
    assert raised.value.name == "EMPTY"


def test_connector_json_takes_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_PASSWORD", raising=False)
    config, errors = load_connector_config({"devices": [low_meter("${NOPE_PASSWORD:-fallback}")]})
    assert errors == []
    assert config.devices[0].connection.password == b"fallback"
    monkeypatch.setenv("NOPE_PASSWORD", "from-env")
    config, errors = load_connector_config({"devices": [low_meter("${NOPE_PASSWORD:-fallback}")]})
    assert config.devices[0].connection.password == b"from-env"


def test_connector_json_unset_variable_names_it_and_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPTY_PASSWORD", "")
    _, errors = load_connector_config({"devices": [low_meter("${EMPTY_PASSWORD}")]})
    assert [str(e) for e in errors] == ['devices[0] "Meter 1": connection.password refers to environment '
                                        'variable EMPTY_PASSWORD, which is not set or empty']


def test_a_default_is_a_clear_secret_under_remote_configuration() -> None:
    raw = {"devices": [low_meter("${PW:-" + SECRET + "}")]}
    errors = clear_secrets(raw)
    assert [e.path for e in errors] == ["connection.password"]
    assert SECRET not in str(errors[0])
    assert SECRET not in str(mask_clear_secrets(raw))
    assert clear_secrets({"devices": [low_meter("${PW}")]}) == []
    assert clear_secrets({"devices": [low_meter("${PW:-}")]}) == []


def test_yaml_unset_variable_names_it_and_the_line() -> None:
    text = "thingsboard:\n  host: localhost\n  port: ${UNSET_PORT}\n"
    with pytest.raises(launcher_config.GatewayConfigError,
                       match=r"environment variable UNSET_PORT is not set \(used in tb_gateway.yaml line 3, port\)"):
        launcher_config.substitute_env(text, {})


def test_simulator_specs_read_the_connector_json_through_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METER_PW", "pw-from-env")
    raw = {"defaults": {"timeoutMs": 2000},
           "devices": [low_meter("${METER_PW}"),
                       {"deviceName": "Bus 1", "connection": {"host": "127.0.0.1", "port": 3333, "interface": "hdlc",
                                                              "serialNumber": 12345678}, "timeseries": POINTS},
                       {"deviceName": "Bus 2", "connection": {"host": "127.0.0.1", "interface": "hdlc",
                                                              "serverAddress": {"physical": 17}}, "timeseries": POINTS},
                       {"deviceName": "Broken", "connection": {"host": "127.0.0.1", "port": "x"},
                        "timeseries": POINTS}]}
    specs = {s["name"]: s for s in simulator_specs(raw)}
    assert set(specs) == {"Meter 1", "Bus 1", "Bus 2"}  # the connector starts no "Broken" either
    assert specs["Meter 1"]["password"] == "pw-from-env" and specs["Meter 1"]["client_address"] == 32
    # The serial-number rule is the schema's: physical 5678 + 1000, 4-byte addressing.
    assert (specs["Bus 1"]["physical_address"], specs["Bus 1"]["address_size"]) == (6678, 4)
    assert specs["Bus 2"]["port"] == 3333  # the default HDLC port, shared: one bus
    assert specs["Bus 1"]["hdlc_group"] == specs["Bus 2"]["hdlc_group"] == "127.0.0.1:3333"
