"""Associations and plain reads, checked with gurux's own client over real sockets."""
from __future__ import annotations

import pytest
from gurux_dlms import GXDLMSException

from dlms_client import client_for
from dlms_client import data, register

REGISTERS10 = ["1.0.32.7.0.255", "1.0.52.7.0.255", "1.0.72.7.0.255", "1.0.31.7.0.255",
               "1.0.51.7.0.255", "1.0.71.7.0.255", "1.0.14.7.0.255", "1.0.1.7.0.255",
               "1.0.13.7.0.255", "1.0.1.8.0.255"]


@pytest.mark.parametrize("name", ["w-none", "w-low", "w-gmac", "h-none", "h-low", "h-gmac"])
def test_associate_and_read_register(sim, name):
    before = sim.stats(name)["associations"]
    with client_for(sim, name) as c:
        c.connect()
        reg = register("1.0.32.7.0.255")
        c.read(reg, 3)
        assert reg.unit == 35 and reg.scaler == pytest.approx(0.1)
        value = c.read(reg, 2)
        assert 220.0 < value < 240.0
        energy = register("1.0.1.8.0.255")
        c.read(energy, 3)
        assert energy.unit == 30
        assert c.read(energy, 2) > 1_000_000
        c.release()
    assert sim.stats(name)["associations"] == before + 1


def test_wrong_password_is_rejected(sim):
    with client_for(sim, "w-low", password="wrong") as c:
        with pytest.raises(GXDLMSException):
            c.connect()
    with client_for(sim, "h-low", password="wrong") as c:
        with pytest.raises(GXDLMSException):
            c.connect()


def test_public_client_can_read_on_secured_meter(sim):
    with client_for(sim, "w-gmac", public=True) as c:
        c.connect()
        assert c.read(data("0.0.96.1.0.255"), 2)


def test_shared_hdlc_port_routes_by_address(sim):
    ports = {sim.port_of(n) for n in ("bus-a", "bus-b", "bus-c")}
    assert len(ports) == 1
    addresses = {sim.meter(n).spec.server_address for n in ("bus-a", "bus-b", "bus-c")}
    assert addresses == {1, (1 << 14) | 17, (1 << 14) | (sim.meter("bus-c").spec.serial_number % 10000 + 1000)}
    for name in ("bus-a", "bus-b", "bus-c"):
        with client_for(sim, name) as c:
            c.connect()
            serial = bytes(c.read(data("0.0.96.1.0.255"), 2)).decode()
            assert serial == str(sim.meter(name).spec.serial_number)
            c.release()


def test_unknown_hdlc_address_is_silent(sim):
    with client_for(sim, "bus-a", server=99, timeout=0.3) as c:
        with pytest.raises(TimeoutError):
            c.connect()


def test_get_with_list_of_ten_registers_in_one_request(sim):
    with client_for(sim, "w-none") as c:
        c.connect()
        before = sim.stats("w-none")["requests"]
        items = [(register(ln), 2) for ln in REGISTERS10]
        values = c.read_list(items)
        assert len(values) == 10
        assert sim.stats("w-none")["requests"] == before + 1
        assert 49.0 < values[6] / 100 < 51.0  # raw frequency, scaler -2 not applied by readList


def test_data_objects_and_clock(sim):
    from dlms_client import GXDLMSClock
    with client_for(sim, "h-none") as c:
        c.connect()
        fw = bytes(c.read(data("1.0.0.2.0.255"), 2)).decode()
        assert fw.isprintable()
        raw = bytes(c.read(data("0.0.96.1.1.255"), 2))
        assert not raw.decode("latin-1").isprintable()
        clock = GXDLMSClock("0.0.1.0.0.255")
        t = c.read(clock, 2)
        assert t.value.utcoffset().total_seconds() == 3600
        assert c.read(clock, 3) == -60
        c.release()


def test_frame_counter_readable_by_public_client_and_increases(sim):
    def read_counter():
        with client_for(sim, "w-gmac", public=True) as c:
            c.connect()
            value = c.read(data("0.0.43.1.0.255"), 2)
            c.release()
            return value

    first = read_counter()
    assert first == sim.meter("w-gmac").invocation_counter
    with client_for(sim, "w-gmac", invocation_counter=first + 1) as c:
        c.connect()
        c.read(register("1.0.1.8.0.255"), 2)
        c.release()
    assert read_counter() > first


def test_disconnect_control_methods(sim):
    from dlms_client import GXDLMSDisconnectControl
    dc = GXDLMSDisconnectControl("0.0.96.3.10.255")
    with client_for(sim, "w-low") as c:
        c.connect()
        assert c.read(dc, 2) is True
        c.transact(c.client.method(dc, 1, 0, 0x0F))
        assert c.read(dc, 2) is False
        assert c.read(dc, 3) == 0
        c.transact(c.client.method(dc, 2, 0, 0x0F))
        assert c.read(dc, 2) is True
        assert c.read(dc, 3) == 1
        c.release()


def test_association_view_lists_objects(sim):
    from gurux_dlms.objects import GXDLMSAssociationLogicalName
    with client_for(sim, "w-none", pdu=256) as c:
        c.connect()
        assoc = GXDLMSAssociationLogicalName()
        objs = c.read(assoc, 2)
        names = {o.logicalName for o in objs}
        assert {"1.0.32.7.0.255", "1.0.99.1.0.255", "0.0.43.1.0.255", "0.0.40.0.0.255"} <= names
        c.release()
