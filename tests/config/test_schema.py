"""The connector config schema: each mistake gives one error naming the device and the field."""
from __future__ import annotations

import copy
import json

import pytest

from tb_dlms.config import (
    ConfigInvalid,
    load_connector_config,
    load_connector_config_strict,
    load_connector_file,
    load_handed_over,
    parse_connector_json,
)
from tb_dlms.protocol.obis import ObisCode
from tb_dlms.protocol.readings import AttributeRef
from tb_dlms.protocol.settings import Authentication, Interface, Secret

KEY_A = "000102030405060708090a0b0c0d0e0f"
KEY_B = "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"


def meter(name: str = "Meter 1", **connection) -> dict:
    return {
        "deviceName": name,
        "connection": {"host": "127.0.0.1", **connection},
        "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"},
                       {"key": "energyImport", "obis": "1-0:1.8.0*255"}],
        "attributes": [{"key": "serialNumber", "obis": "0.0.96.1.0.255", "classId": 1}],
    }


def config(*devices: dict, **top) -> dict:
    return {"name": "DLMS", **top, "devices": list(devices) or [meter()]}


def gmac(name: str = "Meter G", connection: dict | None = None, **security) -> dict:
    return meter(name, authentication="high_gmac", **(connection or {}), security={
        "systemTitle": "4d4d4d0000bc614e", "blockCipherKey": KEY_A, "authenticationKey": KEY_B, **security})


def only_error(raw: dict) -> str:
    _, errors = load_connector_config(raw)
    assert len(errors) == 1, [str(e) for e in errors]
    return str(errors[0])


# -- valid configs ----------------------------------------------------------------------------


def test_minimal_device_gets_defaults():
    cfg, errors = load_connector_config(config())
    assert errors == []
    d = cfg.devices[0]
    assert (d.name, d.type, d.poll_period_s) == ("Meter 1", "default", 30.0)
    c = d.connection
    assert (c.interface, c.port, c.client_address, c.authentication) == (Interface.WRAPPER, 4059, 16,
                                                                         Authentication.NONE)
    assert d.timeseries[0].ref == AttributeRef(ObisCode(1, 0, 32, 7, 0, 255), 3, 2)
    assert d.attributes[0].ref.class_id == 1


def test_hdlc_defaults_port_3333_and_low_client_32():
    cfg, errors = load_connector_config(config(meter(interface="hdlc", authentication="low", password="x")))
    assert errors == []
    c = cfg.devices[0].connection
    assert (c.port, c.client_address) == (3333, 32)


@pytest.mark.parametrize("text", ["1.0.1.8.0.255", "1-0:1.8.0*255", "1-0:1.8.0", " 1-0:1.8.0&255 "])
def test_obis_notations_are_equivalent(text):
    raw = config(meter())
    raw["devices"][0]["timeseries"] = [{"key": "e", "obis": text}]
    cfg, errors = load_connector_config(raw)
    assert errors == []
    assert cfg.devices[0].timeseries[0].ref.obis == ObisCode(1, 0, 1, 8, 0, 255)


def test_class_id_by_name_and_attribute():
    raw = config(meter())
    raw["devices"][0]["attributes"] = [{"key": "clock", "obis": "0.0.1.0.0.255", "classId": "Clock"},
                                       {"key": "scaler", "obis": "1.0.1.8.0.255", "attribute": 3}]
    cfg, errors = load_connector_config(raw)
    assert errors == []
    assert [p.ref.class_id for p in cfg.devices[0].attributes] == [8, 3]
    assert cfg.devices[0].attributes[1].ref.attribute == 3


def test_connector_poll_period_is_the_device_default_and_device_overrides():
    dev2 = meter("Meter 2", port=4060)
    dev2["pollPeriod"] = 2.5
    cfg, errors = load_connector_config(config(meter(), dev2, pollPeriod=5))
    assert errors == []
    assert [d.poll_period_s for d in cfg.devices] == [5, 2.5]


def test_defaults_merge_under_each_connection():
    raw = config(meter(), meter("Meter 2", port=4060, timeoutMs=900, hdlc={"windowSize": 2}),
                 defaults={"timeoutMs": 3000, "retries": 1, "hdlc": {"maxInfoField": 256, "windowSize": 1}})
    cfg, errors = load_connector_config(raw)
    assert errors == []
    a, b = (d.connection for d in cfg.devices)
    assert (a.timeout, a.retries, b.timeout, b.retries) == (3.0, 1, 0.9, 1)
    assert (b.hdlc_max_info, b.hdlc_window) == (256, 2)


def test_serial_number_derives_physical_address():
    cfg, errors = load_connector_config(config(meter(interface="hdlc", serialNumber=12345678)))
    assert errors == []
    c = cfg.devices[0].connection
    assert (c.physical_address, c.address_size) == (5678 + 1000, 4)
    settings = cfg.devices[0].meter_settings()
    assert settings.server_address == (1 << 14) | 6678


def test_meter_settings_carry_every_connection_option():
    raw = config(gmac(connection=dict(
        interface="hdlc", port=4061, clientAddress=1, timeoutMs=1500, connectTimeoutMs=700, retries=4,
        maxPduSize=512, inactivityTimeoutS=60, serverAddress={"logical": 1, "physical": 17, "size": 2},
        hdlc={"maxInfoField": 256, "windowSize": 3})))
    cfg, errors = load_connector_config(raw)
    assert errors == []
    s = cfg.devices[0].meter_settings()
    assert (s.host, s.port, s.interface, s.client_address) == ("127.0.0.1", 4061, Interface.HDLC, 1)
    assert (s.logical_address, s.physical_address, s.address_size) == (1, 17, 2)
    assert (s.timeout, s.connect_timeout, s.retries, s.max_pdu_size) == (1.5, 0.7, 4, 512)
    assert (s.hdlc_max_info, s.hdlc_window, s.inactivity_timeout) == (256, 3, 60)
    assert s.authentication is Authentication.HIGH_GMAC and s.name == "Meter G"
    assert bytes(s.security.block_cipher_key) == bytes.fromhex(KEY_A)
    assert s.security.client_system_title == bytes.fromhex("4d4d4d0000bc614e")


def test_report_strategies_per_connector_device_and_key():
    dev = meter()
    dev["reportStrategy"] = {"type": "ON_CHANGE"}
    dev["timeseries"][0]["reportStrategy"] = {"type": "ON_CHANGE_OR_REPORT_PERIOD", "reportPeriod": 60000}
    cfg, errors = load_connector_config(config(dev, reportStrategy={"type": "ON_REPORT_PERIOD",
                                                                    "reportPeriod": 10000}))
    assert errors == []
    assert cfg.report_strategy.as_gateway_dict() == {"type": "ON_REPORT_PERIOD", "reportPeriod": 10000}
    assert cfg.devices[0].report_strategy.as_gateway_dict() == {"type": "ON_CHANGE"}
    assert cfg.devices[0].timeseries[0].report_strategy.report_period_ms == 60000


def test_comment_keys_are_ignored_everywhere():
    dev = meter()
    dev["_comment"] = "first floor"
    dev["connection"]["// note"] = "behind the serial server"
    dev["timeseries"][0]["_why"] = "billing"
    _, errors = load_connector_config(config(dev, _comment="demo"))
    assert errors == []


def test_gateway_added_keys_are_accepted():
    cfg, errors = load_connector_config(config(id="3f2c", type="dlms", enableRemoteLogging=True,
                                               logLevel="debug"))
    assert errors == []
    assert (cfg.id, cfg.log_level, cfg.enable_remote_logging) == ("3f2c", "DEBUG", True)


# -- one clear error per mistake --------------------------------------------------------------


def _set(path: str, value):
    """A mutation of the first device at a dotted path (value ``...`` deletes)."""
    def mutate(raw: dict) -> None:
        node = raw["devices"][0]
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if value is ...:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return mutate


BROKEN = [
    ("missing name", _set("deviceName", ...), 'devices[0]: deviceName is required'),
    ("name wrong type", _set("deviceName", 7), "devices[0]: deviceName must be a non-empty string, got 7"),
    ("missing host", _set("connection.host", ...), 'devices[0] "Meter 1": connection.host is required'),
    ("missing connection", _set("connection", ...), 'devices[0] "Meter 1": connection is required'),
    ("connection not object", _set("connection", "127.0.0.1"),
     'devices[0] "Meter 1": connection must be an object, got a string'),
    ("port as string", _set("connection.port", "4059"),
     'devices[0] "Meter 1": connection.port must be an integer 1..65535, got "4059"'),
    ("port out of range", _set("connection.port", 70000),
     'devices[0] "Meter 1": connection.port must be an integer 1..65535, got 70000'),
    ("unknown interface", _set("connection.interface", "serial"),
     "devices[0] \"Meter 1\": connection.interface must be one of 'wrapper', 'hdlc', got \"serial\""),
    ("unknown authentication", _set("connection.authentication", "hls"),
     "devices[0] \"Meter 1\": connection.authentication must be one of 'none', 'low', 'high', 'high_md5', "
     "'high_sha1', 'high_gmac', 'high_sha256', 'high_ecdsa', got \"hls\""),
    ("unknown clock deviation", _set("connection.clockDeviation", "+60"),
     "devices[0] \"Meter 1\": connection.clockDeviation must be one of 'utc-minus-local', 'local-minus-utc', "
     "got \"+60\""),
    ("low without password", _set("connection.authentication", "low"),
     "devices[0] \"Meter 1\": connection.password is required when authentication is 'low'"),
    ("high without security", _set("connection.authentication", "high_gmac"),
     "devices[0] \"Meter 1\": connection.security is required when authentication is 'high_gmac'"),
    ("client address too big for hdlc", lambda r: r["devices"][0]["connection"].update(
        interface="hdlc", clientAddress=300),
     'devices[0] "Meter 1": connection.clientAddress must be an integer 1..127, got 300'),
    ("physical on wrapper", _set("connection.serverAddress", {"logical": 1, "physical": 17}),
     'devices[0] "Meter 1": connection.serverAddress physical and size only apply to interface'),
    ("bad address size", lambda r: r["devices"][0]["connection"].update(
        interface="hdlc", serverAddress={"logical": 1, "physical": 17, "size": 3}),
     'devices[0] "Meter 1": connection.serverAddress.size must be 1, 2 or 4 (bytes), got 3'),
    ("serial and physical", lambda r: r["devices"][0]["connection"].update(
        interface="hdlc", serialNumber=123, serverAddress={"physical": 17}),
     'devices[0] "Meter 1": connection.serialNumber conflicts with serverAddress.physical'),
    ("bad obis", _set("timeseries.1.obis", "1.0.1.8.0"),
     'devices[0] "Meter 1": timeseries[1].obis is not an OBIS code: invalid OBIS code \'1.0.1.8.0\''),
    ("obis group > 255", _set("timeseries.0.obis", "1.0.320.7.0.255"),
     'devices[0] "Meter 1": timeseries[0].obis is not an OBIS code'),
    ("missing obis", _set("attributes.0.obis", ...),
     'devices[0] "Meter 1": attributes[0].obis is required'),
    ("missing key", _set("timeseries.0.key", ...), 'devices[0] "Meter 1": timeseries[0].key is required'),
    ("duplicate key", _set("timeseries.1.key", "voltageL1"),
     'devices[0] "Meter 1": timeseries[1].key \'voltageL1\' is already used by timeseries[0]'),
    ("bad class name", _set("attributes.0.classId", "Gauge"),
     'devices[0] "Meter 1": attributes[0].classId must be a COSEM class id'),
    ("attribute zero", _set("timeseries.0.attribute", 0),
     'devices[0] "Meter 1": timeseries[0].attribute must be an integer 1..127, got 0'),
    ("point not object", _set("timeseries.0", "1.0.32.7.0.255"),
     'devices[0] "Meter 1": timeseries[0] must be an object with key and obis, got a string'),
    ("timeseries not list", _set("timeseries", {"key": "v"}),
     'devices[0] "Meter 1": timeseries must be a list, got an object'),
    ("nothing mapped", lambda r: r["devices"][0].update(timeseries=[], attributes=[]),
     'devices[0] "Meter 1": timeseries and attributes are both missing or empty'),
    ("negative poll period", _set("pollPeriod", -5),
     'devices[0] "Meter 1": pollPeriod must be a positive number, got -5'),
    ("typo in key", _set("pollperiod", 5),
     'devices[0] "Meter 1": pollperiod is not a known key (did you mean \'pollPeriod\'?)'),
    ("typo in connection", _set("connection.timeout", 5),
     "devices[0] \"Meter 1\": connection.timeout is not a known key (did you mean 'timeoutMs'?)"),
    ("periodic strategy without period", _set("timeseries.0.reportStrategy", {"type": "ON_REPORT_PERIOD"}),
     'devices[0] "Meter 1": timeseries[0].reportStrategy.reportPeriod is required (milliseconds) for type '
     'ON_REPORT_PERIOD'),
    ("unknown strategy", _set("reportStrategy", {"type": "SOMETIMES"}),
     'devices[0] "Meter 1": reportStrategy.type must be one of'),
    ("retries negative", _set("connection.retries", -1),
     'devices[0] "Meter 1": connection.retries must be an integer 0..10, got -1'),
    ("hdlc window", _set("connection.hdlc", {"windowSize": 9}),
     'devices[0] "Meter 1": connection.hdlc.windowSize must be an integer 1..7, got 9'),
]


@pytest.mark.parametrize("mutate,expected", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_each_mistake_gives_one_error_naming_device_and_field(mutate, expected):
    raw = config(meter())
    mutate(raw)
    assert only_error(raw).startswith(expected)


SECURITY_BROKEN = [
    ("short block cipher key", {"blockCipherKey": KEY_A[:30]},
     'devices[0] "Meter G": connection.security.blockCipherKey must be 16 bytes hex (32 hex digits), '
     'got 15 bytes'),
    ("long authentication key", {"authenticationKey": KEY_B + "00"},
     "connection.security.authenticationKey must be 16 bytes hex (32 hex digits), got 17 bytes"),
    ("system title not hex", {"systemTitle": "MMM00001"},
     "connection.security.systemTitle must be 8 bytes hex (16 hex digits), got 8 characters that are not"),
    ("key wrong type", {"blockCipherKey": 12345},
     "connection.security.blockCipherKey must be a non-empty string, got a number"),
    ("missing key", {"authenticationKey": None},
     "connection.security.authenticationKey is required"),
    ("bad frame counter obis", {"frameCounterObis": "0.0.43.1"},
     "connection.security.frameCounterObis is not an OBIS code"),
]


@pytest.mark.parametrize("security,expected", [b[1:] for b in SECURITY_BROKEN], ids=[b[0] for b in SECURITY_BROKEN])
def test_security_mistakes(security, expected):
    assert expected in only_error(config(gmac(**security)))


def test_key_values_never_appear_in_errors():
    secret = KEY_A[:30]
    _, errors = load_connector_config(config(gmac(blockCipherKey=secret, authenticationKey=secret + "zz")))
    assert len(errors) == 2
    assert all(secret not in str(e) for e in errors)


def test_connector_level_mistakes():
    assert only_error(config(pollPeriod="5")) == 'pollPeriod must be a positive number, got "5"'
    assert only_error(config(logLevel="LOUD")).startswith("logLevel must be one of TRACE, DEBUG")
    assert only_error({"devices": []}) == "devices must list at least one meter, got an empty list"
    assert only_error({"name": "x"}) == "devices is required"
    assert only_error({"devices": {"deviceName": "x"}}) == "devices must be a list, got an object"
    assert only_error({"devices": ["Meter 1"]}) == "devices[0]: must be an object, got a string"
    assert only_error(config(devcies=[])).startswith("devcies is not a known key (did you mean 'devices'?)")
    _, errors = load_connector_config([1, 2])
    assert [str(e) for e in errors] == ["the connector configuration must be a JSON object {...}, got a list; "
                                        "the gateway starts none of its meters"]


def test_duplicate_names_skip_the_later_device():
    cfg, errors = load_connector_config(config(meter(), meter(port=4060), meter("Meter 2", port=4061)))
    assert [d.name for d in cfg.devices] == ["Meter 1", "Meter 2"]
    assert [str(e) for e in errors] == [
        'devices[1] "Meter 1": deviceName duplicates devices[0]; device names must be unique (the device was skipped)']


def test_same_hdlc_address_on_one_serial_server_is_rejected():
    a = meter("A", interface="hdlc", serverAddress={"logical": 1, "physical": 17})
    b = meter("B", interface="hdlc", serverAddress={"logical": 1, "physical": 17})
    c = meter("C", interface="hdlc", serverAddress={"logical": 1, "physical": 18})
    cfg, errors = load_connector_config(config(a, b, c))
    assert [d.name for d in cfg.devices] == ["A", "C"]
    assert str(errors[0]).startswith('devices[1] "B": connection.serverAddress HDLC server address')


def test_bad_device_is_skipped_and_the_others_load():
    bad = meter("Meter 2", port="x")
    cfg, errors = load_connector_config(config(meter(), bad, meter("Meter 3", port=4061)))
    assert [d.name for d in cfg.devices] == ["Meter 1", "Meter 3"]
    assert len(errors) == 1 and str(errors[0]).startswith('devices[1] "Meter 2": connection.port')


def test_all_errors_are_collected_not_just_the_first():
    bad = meter("Meter 2", port="x", interface="serial")
    bad["timeseries"][0]["obis"] = "nope"
    _, errors = load_connector_config(config(bad, pollPeriod=0))
    paths = sorted(e.path for e in errors)
    assert paths == ["connection.interface", "connection.port", "pollPeriod", "timeseries[0].obis"]
    assert {e.device_name for e in errors if e.device_index is not None} == {"Meter 2"}


def test_a_wrong_default_is_reported_once_at_defaults():
    cfg, errors = load_connector_config(config(meter(), meter("Meter 2", port=4060),
                                               defaults={"timeoutMs": -1, "retries": 1}))
    assert [str(e) for e in errors] == ["defaults.timeoutMs must be an integer 1..600000, got -1"]
    assert [d.connection.retries for d in cfg.devices] == [1, 1]


def test_strict_loader_raises_with_every_error():
    raw = config(meter(port="x"), meter("Meter 2", interface="serial"))
    with pytest.raises(ConfigInvalid) as info:
        load_connector_config_strict(raw)
    assert len(info.value.errors) == 2
    assert 'devices[1] "Meter 2": connection.interface' in str(info.value)
    assert load_connector_config_strict(config()).devices[0].name == "Meter 1"


def test_invalid_json_names_line_and_column():
    text = '{\n  "devices": [\n    {"deviceName": "Meter 1",}\n  ]\n}'
    cfg, errors = parse_connector_json(text)
    assert cfg is None
    assert str(errors[0]) == ("the connector file: not valid JSON at line 3 column 29: Illegal trailing comma "
                              "before end of object; the gateway cannot parse this file and starts none of its meters")


# -- secrets ----------------------------------------------------------------------------------


def test_secrets_from_environment(monkeypatch):
    monkeypatch.setenv("METER1_PASSWORD", "pa55word")
    monkeypatch.setenv("METER_G_BCK", KEY_A)
    raw = config(meter(authentication="low", password="${METER1_PASSWORD}"),
                 gmac(blockCipherKey="${METER_G_BCK}"))
    cfg, errors = load_connector_config(raw)
    assert errors == []
    assert cfg.devices[0].connection.password == b"pa55word"
    assert isinstance(cfg.devices[0].connection.password, Secret)
    assert bytes(cfg.devices[1].connection.security.block_cipher_key) == bytes.fromhex(KEY_A)


def test_missing_environment_variable_is_named(monkeypatch):
    monkeypatch.delenv("NOPE_PASSWORD", raising=False)
    msg = only_error(config(meter(authentication="low", password="${NOPE_PASSWORD}")))
    assert msg == ('devices[0] "Meter 1": connection.password refers to environment variable NOPE_PASSWORD, '
                   'which is not set or empty')


def test_environment_keys_are_length_checked_without_showing_them(monkeypatch):
    monkeypatch.setenv("SHORT_KEY", KEY_A[:-2])
    msg = only_error(config(gmac(authenticationKey="${SHORT_KEY}")))
    assert "authenticationKey must be 16 bytes hex (32 hex digits), got 15 bytes" in msg
    assert KEY_A[:-2] not in msg


def test_public_dict_and_repr_mask_secrets():
    raw = config(meter(authentication="low", password="hunter2-pw"), gmac())
    cfg, errors = load_connector_config(raw)
    assert errors == []
    public = cfg.to_public_dict()
    text = json.dumps(public)
    for secret in ("hunter2-pw", KEY_A, KEY_B):
        assert secret not in text
        assert secret not in repr(cfg)
        assert secret not in str(cfg.devices[1].meter_settings())
    assert public["devices"][0]["connection"]["password"] == "***"
    sec = public["devices"][1]["connection"]["security"]
    assert (sec["blockCipherKey"], sec["authenticationKey"]) == ("***", "***")
    assert sec["systemTitle"] == "4d4d4d0000bc614e"


def test_public_dict_reloads_to_the_same_config_apart_from_secrets():
    cfg, _ = load_connector_config(config(meter(), meter("Meter 2", interface="hdlc", serialNumber=42)))
    again, errors = load_connector_config(copy.deepcopy(cfg.to_public_dict()))
    assert errors == []
    assert again.devices == cfg.devices


# -- broken JSON and what the gateway makes of it (config/gateway_json.py) ---------------------


def test_nan_in_a_file_is_refused_naming_line_device_and_field():
    text = json.dumps(config(meter(), meter("Meter 2", port=4060)), indent=2)
    text = text.replace('"name": "DLMS",', '"name": "DLMS", "pollPeriod": Infinity,')
    text = text.replace('"deviceName": "Meter 2",', '"deviceName": "Meter 2", "pollPeriod": NaN,')
    cfg, [error] = parse_connector_json(text, "dlms_connector.json")
    assert cfg is None
    assert str(error).startswith("dlms_connector.json: not valid JSON at line 2 column ")
    assert ('Infinity is not a JSON number (at pollPeriod, devices[1] "Meter 2": pollPeriod): write a number, '
            "or null to leave the setting out; the gateway cannot parse this file and starts none of its meters"
            ) in str(error)


@pytest.mark.parametrize("text", [
    '{"devices": [], "pollPeriod": NaN}', '{"devices": [-Infinity]}', '{"devices": [],}', '[1, 2,]',
    '{"devices": []} {}', "", "\ufeff\ufeff{}",
], ids=["NaN", "-Infinity", "trailing comma", "array trailing comma", "extra data", "empty", "two BOMs"])
def test_every_file_the_gateway_cannot_parse_is_one_file_level_error(text):
    simplejson = pytest.importorskip("simplejson")
    with pytest.raises(simplejson.JSONDecodeError):  # what the gateway's _load_connectors runs into
        simplejson.loads(text)
    cfg, errors = parse_connector_json(text, "x.json")
    assert cfg is None and len(errors) == 1 and errors[0].device is None
    assert str(errors[0]).startswith("x.json") and "the gateway cannot parse this file" in str(errors[0])


def test_a_bom_is_skipped_as_the_gateway_skips_it():
    cfg, errors = parse_connector_json("\ufeff" + json.dumps(config()), "x.json")
    assert errors == [] and cfg.devices[0].name == "Meter 1"


def test_a_top_level_array_names_the_file(tmp_path):
    path = tmp_path / "dlms_connector.json"
    path.write_text(json.dumps([config()]))
    cfg, errors = load_connector_file(path)
    assert cfg.devices == () and [str(e) for e in errors] == [
        "dlms_connector.json: the connector configuration must be a JSON object {...}, got a list; "
        "the gateway starts none of its meters"]


def test_bytes_that_are_not_utf8_name_the_file_and_the_byte(tmp_path):
    path = tmp_path / "dlms_connector.json"
    path.write_bytes(b'{"name": "Z\xe4hler"}')
    _, [error] = load_connector_file(path)
    assert str(error).startswith("dlms_connector.json is not UTF-8 text (byte 11: b'\\xe4'): save it as UTF-8")


def test_the_raw_text_the_gateway_hands_over_is_an_error_not_a_crash():
    handed_over = "{id_var_start}9f0c{id_var_end}" + '{\n  "logLevel": "INFO",\n  "pollPeriod": NaN\n}'
    cfg, [error] = load_handed_over(handed_over, "dlms_connector.json")
    assert cfg.devices == ()
    assert str(error).startswith("dlms_connector.json: not valid JSON at line 3 column 17: NaN is not a JSON number")


@pytest.mark.parametrize("where", ["top", "device", "connection"])
def test_non_finite_numbers_in_a_parsed_config_are_field_errors(where):
    raw = config(meter(), meter("Meter 2", port=4060))
    target = {"top": raw, "device": raw["devices"][1], "connection": raw["devices"][1]["connection"]}[where]
    target["inactivityTimeoutS" if where == "connection" else "pollPeriod"] = float("nan")
    cfg, [error] = load_connector_config(raw)
    assert str(error) == {
        "top": "pollPeriod must be a positive number, got NaN",
        "device": 'devices[1] "Meter 2": pollPeriod must be a positive number, got NaN',
        "connection": 'devices[1] "Meter 2": connection.inactivityTimeoutS must be a positive number, got NaN',
    }[where]
    assert len(cfg.devices) == (1 if where != "top" else 2)


def test_names_longer_than_thingsboard_keeps_are_refused():
    long_device = meter("M" * 10_000, port=4060)
    long_type = meter("Meter 3", port=4061)
    long_type["deviceType"] = "t" * 256
    long_key = meter("Meter 4", port=4062)
    long_key["timeseries"][0]["key"] = "k" * 256
    cfg, errors = load_connector_config(config(meter("N" * 255), long_device, long_type, long_key))
    assert [d.name for d in cfg.devices] == ["N" * 255]
    assert [str(e) for e in errors] == [
        f'devices[1] "{"M" * 40}...": deviceName must be at most 255 characters (ThingsBoard\'s limit for names '
        "and keys), got 10000",
        'devices[2] "Meter 3": deviceType must be at most 255 characters (ThingsBoard\'s limit for names and keys), '
        "got 256",
        'devices[3] "Meter 4": timeseries[0].key must be at most 255 characters (ThingsBoard\'s limit for names '
        "and keys), got 256"]


def test_two_wrapper_devices_on_one_association_are_refused():
    twin = meter("Twin", host="METER.example", clientAddress=16, serverAddress=1)
    other_client = meter("Reader", host="meter.example", authentication="low", password="x")  # client 32
    other_server = meter("Second logical device", host="meter.example", serverAddress={"logical": 2})
    other_port = meter("Other port", host="meter.example", port=4060)
    cfg, errors = load_connector_config(config(meter(host="meter.example"), twin, other_client, other_server,
                                               other_port))
    assert [d.name for d in cfg.devices] == ["Meter 1", "Reader", "Second logical device", "Other port"]
    assert [str(e) for e in errors] == [
        'devices[1] "Twin": connection.serverAddress WRAPPER client address 16 with server address 1 on '
        'METER.example:4059 is already used by devices[0] "Meter 1": both would fight over one association '
        "(the device was skipped)"]


def test_two_hdlc_devices_with_the_same_addresses_on_one_serial_server_are_refused():
    bus = dict(interface="hdlc", port=4061, clientAddress=16, serverAddress={"logical": 1, "physical": 17})
    same = meter("Same", **bus)
    other_client = meter("Other client", **{**bus, "clientAddress": 32})  # still one meter on the bus
    other_server = meter("Neighbour", **{**bus, "serverAddress": {"logical": 1, "physical": 18}})
    other_bus = meter("Other bus", **{**bus, "port": 4062})
    cfg, errors = load_connector_config(config(meter("Meter 1", **bus), same, other_client, other_server,
                                               other_bus))
    assert [d.name for d in cfg.devices] == ["Meter 1", "Neighbour", "Other bus"]
    assert [e.device_name for e in errors] == ["Same", "Other client"]
    assert all("already used by devices[0] \"Meter 1\"" in str(e) for e in errors)


def _ecdsa_device(tmp_path, suite: int = 1, **security) -> dict:
    from tb_dlms.simulator import keys

    private, public = tmp_path / f"client{suite}.pem", tmp_path / f"meter{suite}.pem"
    private.write_bytes(keys.private_pem(keys.CLIENT, suite or 1))
    public.write_bytes(keys.public_pem("meter", suite or 1))
    return meter("Meter E", authentication="high_ecdsa", security={
        "systemTitle": "4d4d4d0000bc614e", "blockCipherKey": KEY_A * (2 if suite == 2 else 1),
        "authenticationKey": KEY_B * (2 if suite == 2 else 1), "suite": suite, "signingKey": str(private),
        "meterPublicKey": str(public), **security})


def test_key_agreement_is_read_and_defaults_to_none(tmp_path):
    from tb_dlms.protocol.settings import KeyAgreement

    agreeing, plain = _ecdsa_device(tmp_path, 2, keyAgreement="global_unicast"), _ecdsa_device(tmp_path, 1)
    plain["deviceName"], plain["connection"]["port"] = "Meter F", 4060
    cfg, errors = load_connector_config(config(agreeing, plain))
    assert errors == []
    agreed, default = (d.connection.security for d in cfg.devices)
    assert agreed.key_agreement is KeyAgreement.GLOBAL_UNICAST and default.key_agreement is KeyAgreement.NONE


@pytest.mark.parametrize("security, message", [
    ({"keyAgreement": "ephemeral"}, "connection.security.keyAgreement must be one of 'none', 'global_unicast', "
                                    "got \"ephemeral\""),
    ({"keyAgreement": "global_unicast", "policy": "none"},
     "connection.security.keyAgreement 'global_unicast' agrees a ciphering key: policy must not be 'none'"),
])
def test_key_agreement_errors_name_the_field(tmp_path, security, message):
    assert message in only_error(config(_ecdsa_device(tmp_path, **security)))


def test_key_agreement_needs_suite_1_or_2():
    raw = config(gmac(keyAgreement="global_unicast"))
    assert 'connection.security.keyAgreement \'global_unicast\' needs security suite 1 (P-256) or 2' in only_error(raw)
