"""connection.referencing, the quirks presets and their switches in the one config schema."""
from __future__ import annotations

import pytest

from tb_dlms.config import load_connector_config
from tb_dlms.config.quirks import PRESETS
from tb_dlms.config.schema import public_connection
from tb_dlms.protocol.settings import Interface, Referencing


def meter(**connection) -> dict:
    return {"deviceName": "Old meter", "connection": {"host": "10.0.0.5", **connection},
            "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}]}


def load(**connection):
    cfg, errors = load_connector_config({"name": "DLMS", "devices": [meter(**connection)]})
    return cfg, [str(e) for e in errors]


def test_referencing_sn_reaches_the_session_settings():
    cfg, errors = load(referencing="sn")
    assert errors == []
    assert cfg.devices[0].meter_settings().referencing is Referencing.SN
    assert load()[0].devices[0].meter_settings().referencing is Referencing.LN


def test_referencing_unknown_names_the_field():
    _, errors = load(referencing="short")
    assert len(errors) == 1 and "connection.referencing" in errors[0] and "Old meter" in errors[0]


def test_referencing_sn_with_high_gmac_is_refused_with_the_reason():
    security = {"systemTitle": "5442444c4d533031", "blockCipherKey": "00" * 16, "authenticationKey": "11" * 16}
    _, errors = load(referencing="sn", authentication="high_gmac", security=security)
    assert len(errors) == 1 and "connection.referencing" in errors[0] and "high_gmac" in errors[0]
    assert load(authentication="high_gmac", security=security)[1] == []


@pytest.mark.parametrize("connection", [
    {"authentication": "low", "password": "x",
     "security": {"systemTitle": "5442444c4d533031", "blockCipherKey": "00" * 16, "authenticationKey": "11" * 16,
                  "policy": "authentication_encryption"}},
    {"authentication": "high", "password": "secret"},
    {"authentication": "high_md5", "password": "secret"},
    {"authentication": "high_sha1", "password": "secret"},
    {"authentication": "high_sha256", "password": "secret", "security": {"systemTitle": "5442444c4d533031"}},
], ids=["low-ciphered", "high", "high_md5", "high_sha1", "high_sha256"])
def test_referencing_sn_with_ciphering_or_hls_is_refused_with_the_reason(connection):
    """Ciphered SN requests trip gurux's getSNPdu assert; HLS pass 3 by short name is not done."""
    _, errors = load(referencing="sn", **connection)
    assert len(errors) == 1 and "connection.referencing" in errors[0] and connection["authentication"] in errors[0]
    assert load(**connection)[1] == []


def test_microstar_preset_fills_in_what_the_field_notes_say():
    cfg, errors = load(quirks="microstar", authentication="low", password="x")
    assert errors == []
    c = cfg.devices[0].connection
    s = cfg.devices[0].meter_settings()
    assert (c.interface, c.port, c.client_address) == (Interface.HDLC, 3333, 1)
    assert (s.hdlc_max_info, s.hdlc_window, s.inactivity_timeout) == (128, 1, 180)
    assert s.min_association_interval == 15
    assert s.unit_overrides_by_code == ((35, "V"),) and s.unit_override(35) == "V" and s.unit_override(32) is None
    public = public_connection(c)
    assert public["quirks"] == "microstar" and public["unitOverrides"] == {"35": "V"}
    assert public["minAssociationIntervalS"] == 15 and "referencing" not in public


def test_device_keys_win_over_the_preset():
    cfg, errors = load(quirks="microstar", authentication="low", password="x", clientAddress=32,
                       hdlc={"windowSize": 3}, minAssociationIntervalS=12)
    assert errors == []
    s = cfg.devices[0].meter_settings()
    assert (s.client_address, s.hdlc_window, s.hdlc_max_info, s.min_association_interval) == (32, 3, 128, 12)


def test_unknown_quirks_name_lists_the_known_ones():
    _, errors = load(quirks="landis")
    assert len(errors) == 1
    assert "connection.quirks" in errors[0] and "unknown quirks preset" in errors[0]
    assert all(name in errors[0] for name in PRESETS)


def test_switches_alone_and_their_errors():
    cfg, errors = load(unitOverrides={"35": "V", "voltageL1": "kV"}, minAssociationIntervalS=10,
                       noRangeDeviation=True)
    assert errors == []
    c = cfg.devices[0].connection
    assert c.unit_overrides_by_code == ((35, "V"),) and c.unit_overrides_by_key == (("voltageL1", "kV"),)
    s = cfg.devices[0].meter_settings()
    assert s.no_range_deviation and s.min_association_interval == 10
    public = public_connection(c)
    assert public["noRangeDeviation"] is True and public["unitOverrides"] == {"35": "V", "voltageL1": "kV"}
    assert public_connection(load(referencing="sn")[0].devices[0].connection)["referencing"] == "sn"
    for bad, field in (({"unitOverrides": ["V"]}, "connection.unitOverrides"),
                       ({"unitOverrides": {"300": "V"}}, "connection.unitOverrides.300"),
                       ({"unitOverrides": {"35": ""}}, "connection.unitOverrides.35"),
                       ({"noRangeDeviation": "yes"}, "connection.noRangeDeviation"),
                       ({"minAssociationIntervalS": -1}, "connection.minAssociationIntervalS")):
        _, errors = load(**bad)
        assert len(errors) == 1 and field in errors[0], (bad, errors)
