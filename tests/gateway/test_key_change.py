"""changeKeys on the adapter side: where keys may come from, and that later sessions use the new ones.

The transfer itself is tested against the simulator (tests/protocol/test_security.py) and
through the real gateway (tests/e2e/test_security_e2e.py).
"""
from __future__ import annotations

import asyncio
import json
import logging

import pytest

from gateway_fakes import FakeFleet, MeterScript

from tb_dlms.config import load_connector_config_strict
from tb_dlms.gateway import rpc
from tb_dlms.gateway.device import DLMSDevice
from tb_dlms.protocol.errors import AccessError

LOG = logging.getLogger("test.dlms.keys")
OLD, NEW_BCK, NEW_AK = "00" * 16, "41" * 16, "61" * 16


def _device(tmp_path, refuse: bool = False, **security):
    key_file = tmp_path / "keys.json"
    key_file.write_text(json.dumps({"blockCipherKey": OLD, "authenticationKey": OLD}))
    sec = {"systemTitle": "4d4d4d0000000001", "keyFile": str(key_file), "masterKey": "22" * 16, **security}
    config = load_connector_config_strict({"devices": [{
        "deviceName": "Meter 1", "connection": {"host": "127.0.0.1", "authentication": "high_gmac", "security": sec},
        "timeseries": [{"key": "energy", "obis": "1.0.1.8.0.255"}]}]}).devices[0]
    refusal = AccessError("key transfer refused (read-write-denied); the old keys stay in use", "Meter 1")
    fleet = FakeFleet(**{"Meter 1": MeterScript(refuse_keys=refusal if refuse else None)})
    return DLMSDevice(config, fleet, lambda data: None, LOG, close_bound_s=0.2), fleet.script("Meter 1"), key_file


def _call(device, params) -> dict:
    """As the connector answers: a request refused while being checked is an error reply too."""
    request = rpc.RpcRequest("changeKeys", params, 1, device.name)
    try:
        call = rpc.prepare_device_call(request, {device.name: device})
    except rpc.RpcError as exc:
        return {"error": str(exc)}
    return asyncio.run(call())


def test_new_keys_from_the_key_file_are_used_by_every_later_session(tmp_path):
    device, script, key_file = _device(tmp_path)
    key_file.write_text(json.dumps({"blockCipherKey": NEW_BCK, "authenticationKey": NEW_AK}))
    reply = _call(device, {"keyFile": str(key_file)})
    assert reply["success"] is True and reply["configTakesKeysFromHere"] is True, reply
    assert script.key_changes == [(bytes.fromhex(NEW_BCK), bytes.fromhex(NEW_AK), "0.0.43.0.0.255")]
    device.session = None  # as after a dropped session: the next one is built from the config
    security = device.shared_session().settings.security
    assert (bytes(security.block_cipher_key), bytes(security.authentication_key)) == (bytes.fromhex(NEW_BCK),
                                                                                      bytes.fromhex(NEW_AK))


def test_refused_change_keeps_the_old_keys(tmp_path):
    device, script, key_file = _device(tmp_path, refuse=True)
    key_file.write_text(json.dumps({"blockCipherKey": NEW_BCK, "authenticationKey": NEW_AK}))
    reply = _call(device, {"keyFile": str(key_file)})
    assert "old keys stay in use" in reply["error"], reply
    device.session = None
    assert bytes(device.shared_session().settings.security.block_cipher_key) == bytes.fromhex(OLD)


def test_keys_from_elsewhere_than_the_config_warn(tmp_path, monkeypatch):
    device, _, _ = _device(tmp_path)
    monkeypatch.setenv("NEXT_BCK", NEW_BCK)
    monkeypatch.setenv("NEXT_AK", NEW_AK)
    reply = _call(device, {"blockCipherKey": "${NEXT_BCK}", "authenticationKey": "${NEXT_AK}"})
    assert reply["success"] is True and reply["configTakesKeysFromHere"] is False
    assert "env:NEXT_BCK,NEXT_AK" in reply["warning"] and NEW_BCK not in json.dumps(reply)


@pytest.mark.parametrize("params,needle", [
    ({"blockCipherKey": NEW_BCK, "authenticationKey": NEW_AK}, "never travel through ThingsBoard"),
    ({"keyFile": "/nonexistent/keys.json"}, "cannot read key file"),
    ({"blockCipherKey": "${UNSET_TB_DLMS_VAR}", "authenticationKey": "${UNSET_TB_DLMS_VAR}"}, "not set"),
    ({"keyFile": "x", "blockCipherKey": "${A}"}, "not both"),
    ({"newKey": NEW_BCK}, "unknown params"),
])
def test_bad_requests_are_refused_without_echoing_keys(tmp_path, params, needle):
    device, script, _ = _device(tmp_path)
    reply = _call(device, params)
    assert needle in reply.get("error", ""), reply
    assert NEW_BCK not in json.dumps(reply)
    assert script.key_changes == []
