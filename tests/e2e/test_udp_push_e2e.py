"""A meter polled over UDP through the real gateway, and the plain pushes of a polled meter.

NB-IoT meters speak UDP only: the connector polls "NB Meter" over UDP WRAPPER (``transport: udp``),
with the same deadlines and resends as TCP. The same meter pushes plain DataNotifications, which
carry no identity: they reach its device because they come from its configured host, both over a
UDP push listener and over a TCP connection it opens to a push listener (nothing to identify there).
"""
from __future__ import annotations

import socket

import pytest

from e2e_support import stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess
from tb_dlms.devtools.mosquitto import free_port
from tb_dlms.simulator import MeterSpec
from tb_dlms.simulator.callin import CallingMeter, CallInFleet, UdpMeterPort, notification, push_values
from tb_dlms.simulator.meter import Meter

NB = "NB Meter"
SPEC = MeterSpec(NB)
PUSH = {"objects": [{"key": "energyImport", "obis": "1.0.1.8.0.255"},
                    {"key": "energyExport", "obis": "1.0.2.8.0.255"},
                    {"key": "activePower", "obis": "1.0.1.7.0.255"}]}


@pytest.fixture(scope="module")
def ports():
    return free_port(), free_port()


@pytest.fixture(scope="module")
def fleet(ports):
    _, tcp_push = ports
    udp = UdpMeterPort(SPEC)
    pusher = CallingMeter(SPEC, "127.0.0.1", tcp_push, push_period=1.0, redial_s=0.5)
    f = CallInFleet([pusher], udp=[udp]).start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, fleet, ports, tmp_path_factory):
    udp_push, tcp_push = ports
    config = {
        "name": "DLMS Connector", "id": "e2e-udp-push", "logLevel": "DEBUG",
        "listeners": [{"name": "udp-push", "transport": "udp", "host": "127.0.0.1", "port": udp_push},
                      {"name": "tcp-push", "host": "127.0.0.1", "port": tcp_push}],
        "devices": [{"deviceName": NB, "pollPeriod": 1, "push": PUSH,
                     "connection": {"host": "127.0.0.1", "port": fleet.udp[NB].port, "transport": "udp",
                                    "timeoutMs": 1000, "retries": 2},
                     "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}]}],
    }
    gw = GatewayProcess(broker.port, connector_config=config,
                        workdir=tmp_path_factory.mktemp("gateway-udp-push")).start()
    yield gw
    if gw.running:
        stop_gateway(gw)


def test_a_meter_polled_over_udp_reports_and_answers_rpcs(fake_tb, fleet, gateway):
    fake_tb.wait_telemetry(NB, ["voltageL1"], timeout=60)
    assert fleet.udp[NB].datagrams > 0
    reply = fake_tb.device_rpc(NB, "get", {"obis": "1.0.1.8.0.255", "classId": 3}, timeout=30)
    assert reply.get("unit") == "Wh" and isinstance(reply.get("value"), (int, float)), reply


def test_plain_pushes_of_a_polled_meter_reach_its_device_over_tcp_and_udp(fake_tb, fleet, gateway, ports):
    udp_push, _ = ports
    pusher = fleet.callers[NB]

    def pushed_points():
        return {p.ts: p.values for p in fake_tb.telemetry_of(NB) if "energyImport" in p.values}

    fake_tb.wait_for(lambda: len(pushed_points()) >= 2, 60, "two TCP pushes under the polled device")
    sent = {ts: values for _, ts, values in list(pusher.sent)}
    for ts, values in pushed_points().items():
        assert ts in sent, f"timestamp {ts} is not one the meter pushed"
        assert [values[k] for k in ("energyImport", "energyExport", "activePower")] == sent[ts]

    meter = Meter(SPEC)
    when = int(meter.now()) - 3600  # a time no TCP push carries
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        for invoke in range(1, 4):  # UDP may drop one; the push is the same each time
            udp.sendto(notification(meter, invoke, False, when), ("127.0.0.1", udp_push))
            try:
                fake_tb.wait_for(lambda: when * 1000 in pushed_points(), 10, "the UDP push")
                break
            except TimeoutError:
                continue
    got = pushed_points().get(when * 1000)
    assert got is not None, "the UDP push from the polled meter's host did not reach its device"
    assert [got[k] for k in ("energyImport", "energyExport", "activePower")] == push_values(meter, when)
    listeners = fake_tb.connector_rpc("dlms_getStats", {}, timeout=20)["listeners"]
    assert listeners["tcp-push"]["push_connections"] >= 1 and listeners["unknownPushes"] == 0, listeners
