"""Bad bytes from a meter: real reply frames, mutated, fed to the session's receive path.

The frames are what gurux-based simulated meters really sent during a poll (association and
GET-with-list replies, WRAPPER and HDLC). Hypothesis flips, truncates, duplicates them and puts
junk between them; every chunk goes through the link's framer and every frame it yields through
``MeterSession._accept``, as the read path does. Only the session's own ``DlmsError`` kinds may
come out; the framer's pending buffer stays bounded; nothing takes long. A second test does the
same over a real socket with a deadline.
"""
from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import device_dict

from tb_dlms.config import load_connector_config_strict
from tb_dlms.protocol import session as session_mod
from tb_dlms.protocol.errors import DlmsError
from tb_dlms.protocol.framing import MAX_HDLC_FRAME, MAX_WRAPPER_PAYLOAD, WRAPPER_HEADER, HdlcFrameReader, \
    WrapperFrameReader
from tb_dlms.protocol.readings import AttributeRef
from tb_dlms.protocol.session import MeterSession
from tb_dlms.protocol.settings import Interface
from tb_dlms.protocol.transport import StreamLink
from tb_dlms.simulator.simulator import Simulator
from tb_dlms.simulator.spec import MeterSpec
from gurux_dlms import GXReplyData

REFS = [AttributeRef.of(o) for o in ("1.0.32.7.0.255", "1.0.31.7.0.255", "1.0.1.8.0.255", "1.0.14.7.0.255")]
REFS.append(AttributeRef.of("0.0.96.1.0.255", 1))
REFS.append(AttributeRef.of("0.0.1.0.0.255", 8))
#: Most a framer may hold back: one maximal frame (plus the chunk being fed).
PENDING_BOUND = {Interface.WRAPPER: WRAPPER_HEADER + MAX_WRAPPER_PAYLOAD, Interface.HDLC: MAX_HDLC_FRAME}


class Recorded:
    """An associated session per interface and the raw frames its meter sent."""

    def __init__(self) -> None:
        self.frames: dict[Interface, list[bytes]] = {}
        self.sessions: dict[Interface, MeterSession] = {}
        self.loop = asyncio.new_event_loop()


@pytest.fixture(scope="module")
def recorded():
    rec = Recorded()
    original = StreamLink._route

    def route(self, frame, size):
        rec.frames.setdefault(self.interface, []).append(frame.raw)
        original(self, frame, size)

    specs = [MeterSpec("fz-wrapper"), MeterSpec("fz-hdlc", interface="hdlc"),
             MeterSpec("fz-gmac", auth="high_gmac")]
    with Simulator(specs) as sim:
        StreamLink._route = route
        try:
            for name in ("fz-wrapper", "fz-hdlc"):
                cfg = load_connector_config_strict({"devices": [device_dict(sim, name)]}).devices[0]
                session = MeterSession(cfg.meter_settings())
                rec.loop.run_until_complete(session.read(REFS))
                rec.loop.run_until_complete(session.read(REFS))
                rec.sessions[cfg.connection.interface] = session
        finally:
            StreamLink._route = original
        yield rec
        for session in rec.sessions.values():
            rec.loop.run_until_complete(session.abort())
    rec.loop.close()


def mutations(frames: list[bytes]) -> st.SearchStrategy[bytes]:
    frame = st.sampled_from(frames)

    @st.composite
    def mutated(draw) -> bytes:
        raw = bytearray(draw(frame))
        for _ in range(draw(st.integers(0, 4))):
            op = draw(st.sampled_from(("flip", "truncate", "duplicate", "junk", "splice")))
            if op == "flip" and raw:
                i = draw(st.integers(0, len(raw) - 1))
                raw[i] ^= draw(st.integers(1, 255))
            elif op == "truncate" and raw:
                raw = raw[:draw(st.integers(0, len(raw)))]
            elif op == "duplicate":
                raw = raw + bytes(raw)
            elif op == "junk":
                i = draw(st.integers(0, len(raw)))
                raw[i:i] = draw(st.binary(max_size=40))
            elif op == "splice":
                raw += draw(frame)
        return bytes(raw)

    return st.lists(st.one_of(mutated(), st.binary(max_size=64)), min_size=1, max_size=6)


def feed(session: MeterSession, interface: Interface, stream: bytes, chunk: int) -> None:
    framer = HdlcFrameReader() if interface is Interface.HDLC else WrapperFrameReader()
    client = session._client
    expect = session_mod._GET
    for i in range(0, len(stream), chunk):
        for frame in framer.feed(stream[i:i + chunk]):
            reply = GXReplyData()
            try:
                session._accept(client, frame.raw, reply, expect)
            except DlmsError:
                pass  # a refused or closed exchange: the session's own, expected kind
        assert framer.pending <= PENDING_BOUND[interface] + chunk


@pytest.mark.parametrize("interface", [Interface.WRAPPER, Interface.HDLC])
def test_mutated_replies_raise_only_dlms_errors_and_stay_bounded(recorded, interface):
    session = recorded.sessions[interface]
    frames = recorded.frames[interface]
    assert len(frames) >= 3

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(parts=mutations(frames), chunk=st.integers(1, 300), invoke=st.integers(1, 15))
    def check(parts, chunk, invoke):
        session._invoke_id = invoke
        started = time.monotonic()
        feed(session, interface, b"".join(parts), chunk)
        assert time.monotonic() - started < 2.0

    check()


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(junk=st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=3))
def test_junk_over_a_real_socket_ends_in_a_dlms_error_within_the_deadline(junk):
    """A 'meter' that answers every request with junk: the read fails in time, with our error."""

    async def scenario():
        async def meter(reader, writer):
            try:
                while await reader.read(4096):
                    for part in junk:
                        writer.write(part)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(meter, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        cfg = load_connector_config_strict({"devices": [{
            "deviceName": "junk", "connection": {"host": "127.0.0.1", "port": port, "timeoutMs": 150,
                                                 "retries": 1, "connectTimeoutMs": 500},
            "timeseries": [{"key": "v", "obis": "1.0.32.7.0.255"}]}]}).devices[0]
        session = MeterSession(cfg.meter_settings())
        started = time.monotonic()
        try:
            with pytest.raises(DlmsError):
                await asyncio.wait_for(session.read(REFS[:2]), 5)
        finally:
            await session.abort()
            server.close()
        assert time.monotonic() - started < 2.0

    asyncio.run(scenario())
