"""test_config.py's diagnosis of a wrong High-GMAC key (issue 11, item 8) and of an AARE that
negotiates a maximum PDU size of 0 or 1 (item 16), against simulated meters."""
from __future__ import annotations

import json

import pytest

from tools_support import make_config_dir, sim_device
from tb_dlms.simulator import MeterSpec, Simulator
from tb_dlms.tools import check

KEY = "000102030405060708090A0B0C0D0E0F"
AUTH_KEY = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
WRONG = "A5" * 16


@pytest.fixture(scope="module")
def meters():
    # One meter per device: two devices on one endpoint and address are a config error (they would
    # fight over one association).
    with Simulator([*(MeterSpec(name, auth="high_gmac", deciphering_error_reply=True)
                      for name in ("gmac", "gmac-b", "gmac-c")),
                    MeterSpec("pdu-0", aare_max_pdu=0), MeterSpec("pdu-1", auth="low", aare_max_pdu=1)]) as s:
        yield s


def probe(capsys, config) -> tuple[int, dict]:
    code = check.main(["--config-dir", str(config), "--json"])
    return code, json.loads(capsys.readouterr().out)


def gmac(sim: Simulator, name: str, meter: str, key: str = KEY, auth_key: str = AUTH_KEY) -> dict:
    return sim_device(sim, meter, name, security={"systemTitle": "4D4D4D0000000001", "blockCipherKey": key,
                                                  "authenticationKey": auth_key})


def test_wrong_high_gmac_key_is_diagnosed_as_keys_or_system_title(meters, tmp_path, token, capsys):
    config = make_config_dir(tmp_path, [gmac(meters, "Right", "gmac"),
                                        gmac(meters, "Wrong key", "gmac-b", key=WRONG),
                                        gmac(meters, "Wrong auth key", "gmac-c", auth_key=WRONG)])
    code, report = probe(capsys, config)
    assert code == check.EXIT_METER
    meters_ = {m["device"]: m for m in report["meters"]}
    assert meters_["Right"]["status"] == "ok"
    for name in ("Wrong key", "Wrong auth key"):
        diagnosis = meters_[name]["diagnosis"]
        assert diagnosis["kind"] == "ciphering", diagnosis
        assert "ciphering failed" in diagnosis["cause"]
        assert "blockCipherKey" in diagnosis["hint"] and "systemTitle" in diagnosis["hint"]
        assert "check interface" not in diagnosis["hint"]
    assert WRONG.lower() not in json.dumps(report).lower() and WRONG not in json.dumps(report), "keys never printed"


def test_negotiated_pdu_size_0_or_1_is_named(meters, tmp_path, token, capsys):
    config = make_config_dir(tmp_path, [
        sim_device(meters, "pdu-0", "Zero"), sim_device(meters, "pdu-1", "One"),
    ])
    code, report = probe(capsys, config)
    assert code == check.EXIT_METER
    for m in report["meters"]:
        size = {"Zero": 0, "One": 1}[m["device"]]
        assert m["diagnosis"]["kind"] == "pdu_size", m["diagnosis"]
        assert f"maximum PDU size of {size} bytes" in m["diagnosis"]["cause"]
        assert "wrong password" not in m["diagnosis"]["hint"] and "not a password" in m["diagnosis"]["hint"]


def test_text_output_names_the_negotiated_size(meters, tmp_path, token, capsys):
    config = make_config_dir(tmp_path, [sim_device(meters, "pdu-0", "Zero")])
    assert check.main(["--config-dir", str(config)]) == check.EXIT_METER
    out = capsys.readouterr().out
    assert "negotiated a maximum PDU size of 0 bytes" in out and "check password or keys" not in out
