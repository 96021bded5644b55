"""Meters that call in, and pushes, through the real gateway and Mosquitto (issue 14).

One gateway for the module: three meters dial in to the "cellular" listener and are polled over
the connections they opened; two meters push DataNotifications to the "pushers" listener (plain,
and ciphered with general-glo-ciphering, identified by system title), one with a wrong key; and
an unknown meter, garbage and a connection flood hit the listeners while the known ones report.
"""
from __future__ import annotations

import socket
import time

import pytest

from e2e_support import stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess, wait_until
from tb_dlms.devtools.mosquitto import free_port
from tb_dlms.simulator import MeterSpec
from tb_dlms.simulator.callin import CallingMeter, CallInFleet
from tb_dlms.simulator.objects import CAPTURE_PERIOD

CELLS = ("Cell A", "Cell B", "Cell C")
PLAIN, CIPHERED, WRONG = "Push Plain", "Push Ciphered", "Push WrongKey"
LOAD = "1.0.99.1.0.255"
MAX_CONNECTIONS = 12
SPECS = {name: MeterSpec(name, profile_days=1) for name in CELLS + (PLAIN, CIPHERED, WRONG, "Stranger")}
ENV = {"E2E_BCK": SPECS[CIPHERED].block_cipher_key.hex(), "E2E_AK": SPECS[CIPHERED].authentication_key.hex(),
       "E2E_WRONG": "00" * 16}
PUSH = {"objects": [{"key": "energyImport", "obis": "1.0.1.8.0.255"},
                    {"key": "energyExport", "obis": "1.0.2.8.0.255"},
                    {"key": "activePower", "obis": "1.0.1.7.0.255"}]}


def _config(cell_port: int, push_port: int) -> dict:
    def cell(name, **extra):
        return {"deviceName": name, "pollPeriod": 1, "connection": {"listener": "cellular", "identity": name},
                "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}], **extra}

    def pusher(name, key):
        title = SPECS[name].system_title.hex()
        return {"deviceName": name, "push": PUSH,
                "connection": {"listener": "pushers", "identity": title,
                               "security": {"systemTitle": "5442444c4d533031", "blockCipherKey": key,
                                            "authenticationKey": "${E2E_AK}"}}}

    return {
        "name": "DLMS Connector", "id": "e2e-inbound", "logLevel": "DEBUG",
        "defaults": {"timeoutMs": 1000, "retries": 1},
        "listeners": [
            {"name": "cellular", "host": "127.0.0.1", "port": cell_port, "maxConnections": MAX_CONNECTIONS,
             "maxNewConnectionsPerS": 100, "identifyTimeoutS": 3, "timeoutMs": 1000},
            {"name": "pushers", "host": "127.0.0.1", "port": push_port, "identifyBy": "systemTitle"},
        ],
        "devices": [
            cell(CELLS[0], profiles=[{"obis": LOAD, "columns": {"1.0.1.8.0.255": "energyImport"},
                                      "windowHours": 24, "horizonDays": 2, "readEvery": 1}]),
            cell(CELLS[1]), cell(CELLS[2]),
            {"deviceName": PLAIN, "push": PUSH, "connection": {"listener": "cellular", "identity": PLAIN}},
            pusher(CIPHERED, "${E2E_BCK}"), pusher(WRONG, "${E2E_WRONG}"),
        ],
    }


@pytest.fixture(scope="module")
def ports():
    return free_port(), free_port()


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, ports, tmp_path_factory):
    gw = GatewayProcess(broker.port, connector_config=_config(*ports), extra_env=ENV,
                        workdir=tmp_path_factory.mktemp("gateway-inbound")).start()
    yield gw
    if gw.running:
        stop_gateway(gw)


@pytest.fixture(scope="module")
def fleet(gateway, ports):
    cell, pushers = ports
    callers = [CallingMeter(SPECS[n], "127.0.0.1", cell, redial_s=0.5) for n in CELLS]
    callers.append(CallingMeter(SPECS[PLAIN], "127.0.0.1", cell, push_period=1.0, redial_s=0.5))
    callers += [CallingMeter(SPECS[n], "127.0.0.1", pushers, push_period=1.0, ciphered=True, redial_s=0.5)
                for n in (CIPHERED, WRONG)]
    callers.append(CallingMeter(SPECS["Stranger"], "127.0.0.1", cell, redial_s=2.0))
    f = CallInFleet(callers).start()
    yield f
    f.stop()


def stats(fake_tb) -> dict:
    return fake_tb.connector_rpc("dlms_getStats", {}, timeout=20)


def test_three_meters_dial_in_each_under_its_own_device(fake_tb, fleet):
    for name in CELLS:
        fake_tb.wait_telemetry(name, ["voltageL1"], timeout=60)
        fake_tb.wait_active(name, True, 20)
    reply = fake_tb.device_rpc(CELLS[1], "get", {"obis": "1.0.1.8.0.255", "classId": 3}, timeout=30)
    assert reply.get("unit") == "Wh" and isinstance(reply.get("value"), (int, float)), reply


def test_pushes_plain_and_ciphered_with_meter_timestamps(fake_tb, fleet):
    for name in (PLAIN, CIPHERED):
        fake_tb.wait_for(lambda n=name: len(fake_tb.telemetry_of(n)) >= 2, 60, f"two pushes of {name}")
        caller = fleet.callers[name]
        sent = {ts: values for _, ts, values in list(caller.sent)}
        for point in fake_tb.telemetry_of(name):
            assert point.ts in sent, f"{name}: timestamp {point.ts} is not one the meter pushed"
            assert [point.values[k] for k in ("energyImport", "energyExport", "activePower")] == sent[point.ts]
    wait_until(lambda: fleet.callers[WRONG].pushes >= 3, 30, "pushes with the wrong key")
    meters = stats(fake_tb)["meters"]
    assert meters[WRONG]["pushFailures"] >= 2 and meters[WRONG]["pushes"] == 0, meters[WRONG]
    assert not fake_tb.telemetry_of(WRONG)


def test_unknown_garbage_and_flood_leave_known_meters_reporting(fake_tb, fleet, ports):
    cell, _ = ports
    wait_until(lambda: fleet.callers["Stranger"].dials >= 1, 30, "the stranger dials")
    fake_tb.wait_for(lambda: stats(fake_tb)["listeners"]["cellular"]["unknown"] >= 1, 30, "unknown meter counted")
    garbage = socket.create_connection(("127.0.0.1", cell))
    garbage.sendall(b"\x7e\xa0\x07GET / HTTP/1.1\r\n\r\n" + bytes(range(256)))
    flood = [socket.create_connection(("127.0.0.1", cell)) for _ in range(3 * MAX_CONNECTIONS)]
    try:
        fake_tb.wait_for(lambda: stats(fake_tb)["listeners"]["cellular"]["refused_full"] >= 1, 30,
                         "connections refused past maxConnections")
        since = time.time()
        for name in CELLS:
            fake_tb.wait_telemetry(name, ["voltageL1"], timeout=30, since=since)
    finally:
        for s in flood + [garbage]:
            s.close()
    listener = stats(fake_tb)["listeners"]["cellular"]
    assert listener["identified"] >= len(CELLS) and listener["unidentified"] >= 0, listener


def test_cut_and_call_back_backfills_the_profile_gap_once(fake_tb, fleet, gateway):
    name = CELLS[0]
    caller = fleet.callers[name]
    meter = caller.meter

    def intervals():
        return [p.ts for p in fake_tb.telemetry_of(name) if "energyImport" in p.values]

    first_last = int(meter.now() // CAPTURE_PERIOD * CAPTURE_PERIOD) * 1000
    fake_tb.wait_for(lambda: first_last in intervals(), 60, "the profile read up to now")
    caller.enabled = False
    fleet.call(caller.hang_up)
    fake_tb.wait_for(lambda: fake_tb.devices[name].attributes.get("dlmsConnected") is False, 30,
                     f"{name} reported not connected")
    assert "not connected" in fake_tb.devices[name].attributes["lastError"]
    # Disconnected at ThingsBoard while it is away (device activity follows the meter) ...
    fake_tb.wait_for(lambda: not fake_tb.devices[name].connected, 30, f"{name} disconnected at ThingsBoard")
    # ... and an RPC still gets the connector's clear answer, not the gateway's bare 408.
    reply = fake_tb.device_rpc(name, "get", {"obis": "1.0.1.8.0.255", "classId": 3}, timeout=30)
    assert "not connected" in reply.get("error", ""), reply
    fleet.call(meter.advance_clock, 2 * 3600)  # two hours of intervals captured while it was away
    caller.enabled = True
    last = int(meter.now() // CAPTURE_PERIOD * CAPTURE_PERIOD) * 1000
    fake_tb.wait_for(lambda: last in intervals(), 60, "the gap read after the call-back")
    fake_tb.wait_for(lambda: fake_tb.devices[name].attributes.get("dlmsConnected") is True, 30, "back")
    assert fake_tb.devices[name].connected, "connected at ThingsBoard again once it called back"
    stamps = intervals()
    gap = [t for t in range(first_last + CAPTURE_PERIOD * 1000, last + 1, CAPTURE_PERIOD * 1000)]
    assert all(stamps.count(t) == 1 for t in gap), [t for t in gap if stamps.count(t) != 1]
    assert "ERROR" not in "".join(line for line in gateway.output_tail().splitlines() if "Traceback" in line)
