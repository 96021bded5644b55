"""Every fault kind as the client sees it. Absence of a reply is asserted with short timeouts."""
from __future__ import annotations

import time

import pytest
from gurux_dlms import GXDLMSException
from gurux_dlms.GXDLMSConfirmedServiceError import GXDLMSConfirmedServiceError

from dlms_client import client_for
from dlms_client import Closed, data, register
from tb_dlms.protocol.framing import WrapperFrameReader
from tb_dlms.simulator import Fault

SERIAL = "0.0.96.1.0.255"


@pytest.fixture
def faulty(sim):
    sim.clear("faulty")
    sim.clear("faulty-h")
    yield "faulty"
    sim.clear("faulty")
    sim.clear("faulty-h")


def _connected(sim, name="faulty", **kw):
    return client_for(sim, name, timeout=kw.pop("timeout", 0.4), **kw).connect()


def test_no_reply_then_recovers(sim, faulty):
    with _connected(sim) as c:
        sim.inject(faulty, Fault("no_reply", count=1))
        with pytest.raises(TimeoutError):
            c.read(data(SERIAL), 2)
        assert c.read(data(SERIAL), 2)  # count exhausted: answers again


def test_drop_connection(sim, faulty):
    with _connected(sim) as c:
        sim.inject(faulty, Fault("drop_connection", count=1))
        with pytest.raises(Closed, match="closed"):
            c.read(data(SERIAL), 2)


def test_reset_sends_rst(sim, faulty):
    with _connected(sim) as c:
        sim.inject(faulty, Fault("reset", count=1))
        with pytest.raises(Closed, match="reset"):
            c.read(data(SERIAL), 2)


def test_garbage_instead_of_reply(sim, faulty):
    with _connected(sim) as c:
        sim.inject(faulty, Fault("garbage", count=1))
        c.send(c.client.read(data(SERIAL), 2)[0])
        junk = c.recv_raw()
        assert junk and WrapperFrameReader().feed(junk) == []


def test_garbage_before_reply_is_skipped_by_the_reader(sim, faulty):
    with _connected(sim) as c:
        sim.inject(faulty, Fault("garbage", count=1, before=True))
        assert bytes(c.read(data(SERIAL), 2)).isdigit()
        assert c.reader.discarded_bytes > 0


def test_half_frame(sim, faulty):
    with _connected(sim) as c:
        sim.inject(faulty, Fault("half_frame", count=1))
        with pytest.raises(TimeoutError):
            c.read(data(SERIAL), 2)
        assert c.reader.pending > 0  # an incomplete frame is all we got


def test_reject_association(sim, faulty):
    sim.inject(faulty, Fault("reject_association", count=1))
    with client_for(sim, faulty) as c:
        with pytest.raises(GXDLMSException):
            c.connect()
    with client_for(sim, faulty) as c:
        c.connect()  # only one rejection was asked for


def test_reboot_keeping_connection_loses_association(sim, faulty):
    with _connected(sim) as c:
        reboots = sim.stats(faulty)["reboots"]
        sim.inject(faulty, Fault("reboot", close=False))
        assert sim.stats(faulty)["reboots"] == reboots + 1
        # The fresh meter answers "not associated" (confirmed-service-error), as a real one does.
        with pytest.raises(GXDLMSConfirmedServiceError):
            c.read(data(SERIAL), 2)


def test_reboot_hdlc_closes_link(sim, faulty):
    with _connected(sim, "faulty-h") as c:
        sim.reboot("faulty-h")
        with pytest.raises(Closed):
            c.read(data(SERIAL), 2)
    with _connected(sim, "faulty-h") as c:  # comes back with a fresh HDLC link
        assert c.read(data(SERIAL), 2)


def test_delay(sim, faulty):
    with _connected(sim, timeout=2.0) as c:
        sim.inject(faulty, Fault("delay", count=1, seconds=0.3))
        t0 = time.monotonic()
        c.read(register("1.0.1.8.0.255"), 2)
        assert time.monotonic() - t0 >= 0.3
        t0 = time.monotonic()
        c.read(register("1.0.1.8.0.255"), 2)
        assert time.monotonic() - t0 < 0.3


def test_blackhole_keeps_connection_open(sim, faulty):
    with _connected(sim) as c:
        sim.inject(faulty, Fault("blackhole"))
        with pytest.raises(TimeoutError):
            c.read(data(SERIAL), 2)
        with pytest.raises(TimeoutError):  # still open: recv times out instead of EOF
            c.recv_raw()
        sim.clear(faulty)
    with _connected(sim) as c:
        assert c.read(data(SERIAL), 2)
