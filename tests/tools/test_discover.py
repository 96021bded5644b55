"""--discover: the meter's association view becomes a devices[] entry the schema accepts."""
from __future__ import annotations

import json

import pytest

from tb_dlms.config import load_connector_config
from tb_dlms.tools import check
from tb_dlms.tools.discover import parse_object_list
from tb_dlms.tools.known_obis import key_for
from tb_dlms.protocol.obis import ObisCode


def discover(capsys, *args: str) -> tuple[int, str, str]:
    code = check.main(["--discover", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_discover_wrapper_meter(sim, capsys):
    code, out, err = discover(capsys, f"127.0.0.1:{sim.port_of('open')}", "--name", "Found")
    assert code == 0, err
    entry = json.loads(out)
    keys = {p["key"] for p in entry["timeseries"]}
    assert {"voltageL1", "voltageL2", "voltageL3", "currentL1", "frequency", "activePowerImport",
            "energyImport", "energyExport"} <= keys
    assert {p["key"] for p in entry["attributes"]} >= {"serialNumber", "firmwareVersion"}
    config, errors = load_connector_config({"devices": [entry]})
    assert errors == [] and config.devices[0].name == "Found"
    assert "objects in the association view" in err


def test_discover_hdlc_meter_with_password_as_connector(sim, capsys, monkeypatch):
    monkeypatch.setenv("BUS_PASSWORD", "12345678")
    code, out, err = discover(capsys, f"127.0.0.1:{sim.port_of('bus-a')}", "--interface", "hdlc",
                              "--auth", "low", "--password", "${BUS_PASSWORD}", "--server-physical", "17",
                              "--server-size", "4", "--as-connector")
    assert code == 0, err
    data = json.loads(out)
    assert data["devices"][0]["connection"]["password"] == "${BUS_PASSWORD}", "env references stay references"
    config, errors = load_connector_config(data)
    assert errors == []
    assert config.devices[0].connection.physical_address == 17


def test_discover_wrong_address_fails_with_diagnosis(sim, capsys):
    code, out, err = discover(capsys, f"127.0.0.1:{sim.port_of('bus-a')}", "--interface", "hdlc",
                              "--server-physical", "55", "--server-size", "4", "--timeout-ms", "300")
    assert code == 2 and out == ""
    assert "address" in err


def test_discover_bad_target_is_usage(capsys):
    assert discover(capsys, "no-port-here")[0] == check.EXIT_USAGE


def test_object_list_parsing_and_keys():
    raw = [[3, 0, "0100200700ff", [[[1, 1, None], [2, 1, None]], []]],
           [3, 0, bytes([1, 0, 99, 7, 0, 255]), [[[2, 0, None]], []]],
           [8, 0, "0.0.1.0.0.255", None],
           ["junk"]]
    objects = parse_object_list(raw)
    assert [str(o.obis) for o in objects] == ["1.0.32.7.0.255", "1.0.99.7.0.255", "0.0.1.0.0.255"]
    assert objects[0].readable and not objects[1].readable
    assert key_for(ObisCode.parse("1.0.32.7.0.255")) == "voltageL1"
    assert key_for(ObisCode.parse("1.0.99.7.0.255")) == "obis_1_0_99_7_0_255"


def test_discover_high_gmac_meter_keys_from_the_environment(gmac_sim, capsys, monkeypatch):
    spec = gmac_sim.meter("gmac").spec
    monkeypatch.setenv("METER_BK", spec.block_cipher_key.hex())
    monkeypatch.setenv("METER_AK", spec.authentication_key.hex())
    code, out, err = discover(capsys, f"127.0.0.1:{gmac_sim.port_of('gmac')}", "--auth", "high_gmac",
                              "--system-title", "5442444c4d533031", "--block-cipher-key", "${METER_BK}",
                              "--authentication-key", "${METER_AK}", "--name", "Ciphered")
    assert code == 0, err
    entry = json.loads(out)
    assert {"voltageL1", "energyImport"} <= {p["key"] for p in entry["timeseries"]}
    security = entry["connection"]["security"]
    assert security["blockCipherKey"] == "${METER_BK}" and security["authenticationKey"] == "${METER_AK}"
    assert spec.block_cipher_key.hex() not in out + err and spec.authentication_key.hex() not in out + err
    config, errors = load_connector_config({"devices": [entry]})
    assert errors == [] and config.devices[0].connection.authentication.value == "high_gmac"


def test_discover_high_gmac_wrong_key_length_is_usage(gmac_sim, capsys):
    code, out, err = discover(capsys, f"127.0.0.1:{gmac_sim.port_of('gmac')}", "--auth", "high_gmac",
                              "--system-title", "5442444c4d533031", "--block-cipher-key", "0011",
                              "--authentication-key", "00" * 16)
    assert code == check.EXIT_USAGE and out == ""
    assert "blockCipherKey" in err and "0011" not in err


@pytest.fixture(scope="module")
def gmac_sim():
    from tb_dlms.simulator import MeterSpec, Simulator

    with Simulator([MeterSpec("gmac", auth="high_gmac")]) as s:
        yield s
