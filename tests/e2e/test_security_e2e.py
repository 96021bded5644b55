"""Every HLS mechanism and security suite, and a key change, through the real gateway (issue 15).

One simulator and one gateway for the module, one meter per combination:
  HLS / MD5 / SHA1 / SHA256      the secret-based mechanisms, no ciphering (SHA256 also over HDLC)
  GMAC                           suite 0, authenticated and encrypted
  ECDSA 1 / ECDSA 2 / ECDSA 2 ded suites 1 and 2 (P-256, P-384), the last with a dedicated key
  Meter Agree 2                  suite 2, a meter that requires key agreement (Security Setup method 3)
  Wrong SHA256                   a wrong HLS-SHA256 secret: diagnosed, not a timeout
  Keys / Keys Refused            changeKeys through ThingsBoard, the keys in a key file on the gateway
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from e2e_support import device_stats, stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess
from tb_dlms.simulator import MeterSpec, Simulator
from tb_dlms.simulator.client_config import connection_for
from tb_dlms.simulator.faults import Fault

POLL_PERIOD_S = 2
KEYS = {"voltageL1": "1.0.32.7.0.255", "energyImport": "1.0.1.8.0.255"}
#: device name -> (auth, suite, interface, dedicated key)
METERS = {
    "Meter HLS": ("high", 0, "wrapper", False),
    "Meter MD5": ("high_md5", 0, "wrapper", False),
    "Meter SHA1": ("high_sha1", 0, "wrapper", False),
    "Meter SHA256": ("high_sha256", 0, "wrapper", False),
    "Meter SHA256 HDLC": ("high_sha256", 0, "hdlc", False),
    "Meter GMAC": ("high_gmac", 0, "wrapper", False),
    "Meter ECDSA 1": ("high_ecdsa", 1, "wrapper", False),
    "Meter ECDSA 2": ("high_ecdsa", 2, "wrapper", False),
    "Meter ECDSA 2 ded": ("high_ecdsa", 2, "wrapper", True),
    "Meter Agree 2": ("high_ecdsa", 2, "wrapper", False),
    "Wrong SHA256": ("high_sha256", 0, "wrapper", False),
    "Keys": ("high_gmac", 0, "wrapper", False),
    "Keys Refused": ("high_ecdsa", 1, "wrapper", False),
}
WORKING = [n for n in METERS if n != "Wrong SHA256"]
#: Meters that refuse every read until the global unicast key is agreed (security.keyAgreement).
AGREEING = {"Meter Agree 2"}
WRONG_SECRET = "not-the-meter-secret"
NEW_BCK, NEW_AK = "4142434445464748494a4b4c4d4e4f50", "6162636465666768696a6b6c6d6e6f70"


@pytest.fixture(scope="module")
def simulator():
    specs = [MeterSpec(name, auth=auth, security_suite=suite, interface=interface,
                       require_key_agreement=name in AGREEING)
             for name, (auth, suite, interface, _ded) in METERS.items()]
    sim = Simulator(specs).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("keys")


def _key_file(key_dir: Path, name: str, bck: str, ak: str) -> Path:
    path = key_dir / f"{name.replace(' ', '_')}.keys.json"
    path.write_text(json.dumps({"blockCipherKey": bck, "authenticationKey": ak}))
    path.chmod(0o600)
    return path


def _connector_config(sim: Simulator, key_dir: Path) -> dict:
    devices = []
    for name, (_auth, _suite, _interface, dedicated) in METERS.items():
        spec = sim.meter(name).spec
        conn = connection_for(spec, sim.port_of(name), key_dir, dedicated_key=dedicated)
        if name == "Wrong SHA256":
            conn["password"] = WRONG_SECRET
        if name.startswith("Keys"):
            sec = conn["security"]
            sec["keyFile"] = str(_key_file(key_dir, name, sec.pop("blockCipherKey"), sec.pop("authenticationKey")))
        devices.append({"deviceName": name, "deviceType": "dlms-meter", "connection": conn,
                        "timeseries": [{"key": k, "obis": o} for k, o in KEYS.items()]})
    return {"name": "DLMS Connector", "id": "e2e-security", "logLevel": "DEBUG", "pollPeriod": POLL_PERIOD_S,
            "defaults": {"timeoutMs": 3000, "retries": 1, "connectTimeoutMs": 3000},
            "breaker": {"failureThreshold": 1000}, "devices": devices}


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, simulator, key_dir, tmp_path_factory):
    gw = GatewayProcess(broker.port, connector_config=_connector_config(simulator, key_dir),
                        workdir=tmp_path_factory.mktemp("gateway")).start()
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="module")
def reporting(gateway, fake_tb):
    try:
        for name in WORKING:
            fake_tb.wait_telemetry(name, KEYS, timeout=60)
    except TimeoutError:
        gateway.assert_running()
        raise
    return True


def _fresh_telemetry(fake_tb, device: str, polls: int = 2) -> None:
    since = time.time()
    for _ in range(polls):
        fake_tb.wait_telemetry(device, KEYS, timeout=POLL_PERIOD_S * 3 + 20, since=since)
        since = time.time()


def test_every_mechanism_and_suite_reports(reporting, fake_tb, simulator):
    for name in WORKING:
        point = fake_tb.telemetry_of(name)[-1]
        assert 180 < point.values["voltageL1"] < 260, (name, point.values)
        assert simulator.stats(name)["associations"] >= 1


def test_meter_requiring_key_agreement_reports(reporting, fake_tb, simulator, gateway):
    _fresh_telemetry(fake_tb, "Meter Agree 2", polls=1)
    assert simulator.stats("Meter Agree 2")["key_agreements"] >= 1
    stats = device_stats(fake_tb, "Meter Agree 2")
    assert not stats["errors"].get("key_agreement") and not stats["lastError"], stats


def test_wrong_secret_is_diagnosed_naming_the_mechanism(reporting, fake_tb):
    deadline = time.monotonic() + 45
    while True:
        stats = device_stats(fake_tb, "Wrong SHA256")
        if stats["lastError"]:
            break
        assert time.monotonic() < deadline, stats
        time.sleep(0.5)  # polling getStats for a condition, bounded by the deadline
    assert "HLS-SHA256 authentication failed: check the secret" in stats["lastError"], stats["lastError"]
    assert stats["errors"].get("authentication", 0) >= 1 and not stats["errors"].get("timeout"), stats
    assert WRONG_SECRET not in json.dumps(stats)


def test_key_change_through_thingsboard_then_polls_with_the_new_keys(reporting, fake_tb, simulator, key_dir,
                                                                     gateway):
    path = _key_file(key_dir, "Keys", NEW_BCK, NEW_AK)  # the operator puts the new keys in place
    reply = fake_tb.device_rpc("Keys", "changeKeys", {"keyFile": str(path)}, timeout=45)
    assert reply.get("success") is True, reply
    assert reply["configTakesKeysFromHere"] is True and "warning" not in reply, reply
    assert simulator.meter("Keys").spec.block_cipher_key.hex() == NEW_BCK
    _fresh_telemetry(fake_tb, "Keys")
    # A new session (as after any failure or a restart) associates with the new keys too.
    assert fake_tb.device_rpc("Keys", "reconnect", {}, timeout=20).get("success") is True
    _fresh_telemetry(fake_tb, "Keys")
    text = json.dumps(reply) + gateway.log_text() + gateway.output_tail(10**7)
    assert NEW_BCK not in text.lower() and NEW_AK not in text.lower(), "keys never logged or replied"


def test_failed_key_change_leaves_the_old_keys_working(reporting, fake_tb, simulator, key_dir):
    old = simulator.meter("Keys Refused").spec.block_cipher_key
    path = _key_file(key_dir, "Keys Refused", NEW_BCK, NEW_AK)
    simulator.inject("Keys Refused", Fault("refuse_key_transfer", count=1))
    reply = fake_tb.device_rpc("Keys Refused", "changeKeys", {"keyFile": str(path)}, timeout=45)
    assert "old keys stay in use" in reply.get("error", ""), reply
    assert simulator.meter("Keys Refused").spec.block_cipher_key == old
    _fresh_telemetry(fake_tb, "Keys Refused")
    assert fake_tb.device_rpc("Keys Refused", "reconnect", {}, timeout=20).get("success") is True
    _fresh_telemetry(fake_tb, "Keys Refused")


def test_key_change_with_a_key_in_clear_is_refused_unechoed(reporting, fake_tb, simulator):
    changes = simulator.stats("Keys")["key_changes"]
    reply = fake_tb.device_rpc("Keys", "changeKeys", {"blockCipherKey": NEW_BCK, "authenticationKey": NEW_AK},
                               timeout=20)
    assert "never travel through ThingsBoard" in reply.get("error", ""), reply
    assert NEW_BCK not in json.dumps(reply)
    assert simulator.stats("Keys")["key_changes"] == changes


def test_no_secret_in_the_gateway_logs(reporting, gateway, simulator, key_dir):
    text = gateway.log_text() + gateway.output_tail(10**7)
    for name in WORKING:
        spec = simulator.meter(name).spec
        assert spec.block_cipher_key.hex() not in text.lower(), name
    assert "PRIVATE KEY" not in text and WRONG_SECRET not in text
    agreed = simulator.meter("Meter Agree 2").last_agreed_key
    assert agreed is not None and agreed.hex() not in text.lower(), "an agreed key is never logged"
