"""Secrets never leave the process: not in a log line at DEBUG, not in a stats reply, not in an error.

Real sessions against simulated Low and High-GMAC meters (good and wrong credentials), the
connector at DEBUG with every logger captured, then every RPC an operator might run.
"""
from __future__ import annotations

import json
import logging

import support  # noqa: F401 - puts tests/gateway on the path
from gateway_fakes import FakeGateway
from support import device_dict

from tb_dlms.gateway.connector import DLMSConnector
from tb_dlms.simulator.simulator import Simulator
from tb_dlms.simulator.spec import MeterSpec

PASSWORD = "Tr0ub4dor-pw-7781"
WRONG_PASSWORD = "Wr0ng-pw-22119"
BLOCK_KEY = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
AUTH_KEY = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
WRONG_KEY = bytes.fromhex("99887766554433221100ffeeddccbbaa")


def needles() -> list[str]:
    out = []
    for pw in (PASSWORD, WRONG_PASSWORD):
        out += [pw, pw.encode().hex(), pw.encode().hex().upper(), repr(pw.encode())]
    for key in (BLOCK_KEY, AUTH_KEY, WRONG_KEY):
        out += [key.hex(), key.hex().upper(), key.hex(" "), repr(key), repr(bytearray(key)), str(list(key))]
    return out


class Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record) -> None:
        self.lines.append(self.format(record))


def test_no_secret_in_logs_stats_or_errors(capfd):
    specs = [MeterSpec("low", auth="low", client_address=32, password=PASSWORD),
             MeterSpec("low-wrong", auth="low", client_address=32, password=PASSWORD),
             MeterSpec("gmac", auth="high_gmac", block_cipher_key=BLOCK_KEY, authentication_key=AUTH_KEY),
             MeterSpec("gmac-hdlc", interface="hdlc", auth="high_gmac", block_cipher_key=BLOCK_KEY,
                       authentication_key=AUTH_KEY),
             MeterSpec("gmac-wrong", auth="high_gmac", block_cipher_key=BLOCK_KEY, authentication_key=AUTH_KEY)]
    handler = Everything()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    replies: list = []
    try:
        with Simulator(specs) as sim:
            devices = [device_dict(sim, s.name, pollPeriod=0.5) for s in specs]
            devices[1]["connection"]["password"] = WRONG_PASSWORD
            devices[4]["connection"]["security"]["blockCipherKey"] = WRONG_KEY.hex()
            devices[4]["connection"]["security"]["authenticationKey"] = WRONG_KEY.hex()
            # A broken device that carries a secret too: its configuration error must not show it.
            bad = device_dict(sim, "low", pollPeriod=0.5)
            bad.update(deviceName="low-broken")
            bad["connection"]["port"] = "not a port"
            devices.append(bad)
            gateway = FakeGateway()
            connector = DLMSConnector(gateway, {"name": "DLMS Secrets", "logLevel": "DEBUG", "devices": devices},
                                      "dlms")
            connector.open()
            try:
                good = ("low", "gmac", "gmac-hdlc")
                assert gateway.wait_for(lambda: all(gateway.telemetry(n) for n in good), 30)
                assert gateway.wait_for(lambda: all(connector.devices[n].stats.polls_failed >= 2
                                                    for n in ("low-wrong", "gmac-wrong")), 30)
                for i, (dev, method, params) in enumerate([
                        (n, m, p) for n in ("low", "low-wrong", "gmac", "gmac-wrong", "gmac-hdlc", "nope")
                        for m, p in (("getStats", {}), ("get", {"obis": "1.0.32.7.0.255"}),
                                     ("get", {"obis": "0.0.43.1.0.255", "classId": 1}),
                                     ("readAttributes", {}), ("reconnect", {}))]):
                    connector.server_side_rpc_handler({"device": dev, "data": {"id": 100 + i, "method": method,
                                                                                 "params": params}})
                    assert gateway.wait_for(lambda i=i: gateway.reply_for(100 + i) is not None, 15)
                    replies.append(gateway.reply_for(100 + i))
                replies.append(connector.server_side_rpc_handler({"method": "dlms_getStats", "params": {},
                                                                  "id": "1"}))
                replies.append(connector.server_side_rpc_handler({"method": "dlms_reconnect", "params": {},
                                                                  "id": "2"}))
                replies.append(connector.dlms_config.to_public_dict())
            finally:
                connector.close()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    captured = capfd.readouterr()
    logs = "\n".join(handler.lines)
    log_files = "\n".join(p.read_text(errors="replace") for p in __import__("pathlib").Path(".").glob("**/*.log"))
    texts = {"log records": logs, "log files": log_files, "stdout/stderr": captured.out + captured.err,
             "rpc replies": json.dumps(replies, default=str), "stored data": repr(gateway.stored)}
    assert "DEBUG" in logs and "rejected" in logs  # the run did log at DEBUG, failures included
    assert any("error" in r for r in replies if isinstance(r, dict))
    for where, text in texts.items():
        for needle in needles():
            assert needle not in text, f"secret {needle[:6]}... found in {where}"
