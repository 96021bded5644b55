"""Replies a session must refuse, over real TCP to the simulator (issue 11, items 12-14).

A huge legal value and a block transfer that never ends stop at maxReplyBytes (while receiving,
not after); bad A-XDR is an error naming the attribute, never a value; a write whose value does
not fit its type is refused before anything is sent and the association stays.
"""
from __future__ import annotations

import asyncio

import pytest
from support import device_dict

from tb_dlms.config import load_connector_config_strict
from tb_dlms.protocol import axdr
from tb_dlms.protocol.errors import InvalidValue, MalformedReply, ReplyTooLarge
from tb_dlms.protocol.readings import AttributeRef
from tb_dlms.protocol.session import MeterSession
from tb_dlms.simulator.faults import Fault
from tb_dlms.simulator.simulator import Simulator
from tb_dlms.simulator.spec import MeterSpec

FIRMWARE = "1.0.0.2.0.255"
REF = AttributeRef.of(FIRMWARE, 1)
LIMIT = 16384


@pytest.fixture(scope="module")
def sim():
    with Simulator([MeterSpec("w"), MeterSpec("h", interface="hdlc")]) as simulator:
        yield simulator


async def _session(sim, name: str) -> MeterSession:
    cfg = load_connector_config_strict({"devices": [device_dict(sim, name, connection={
        "timeoutMs": 2000, "maxReplyBytes": LIMIT})]}).devices[0]
    session = MeterSession(cfg.meter_settings())
    await session.connect()
    return session


@pytest.mark.parametrize("name,fault", [
    ("w", Fault("huge_value", obis=FIRMWARE, size=4_000_000)),
    ("h", Fault("huge_value", obis=FIRMWARE, size=4_000_000)),
    ("w", Fault("endless_blocks", obis=FIRMWARE)),
])
def test_oversized_reply_stops_at_the_limit(sim, name, fault):
    async def scenario():
        session = await _session(sim, name)
        sim.inject(name, fault)
        try:
            received = session.stats.bytes_received
            with pytest.raises(ReplyTooLarge) as err:
                await asyncio.wait_for(session.read([REF]), 20)
            # Stopped as the limit was passed: at most one PDU (or HDLC frame) beyond it.
            assert session.stats.bytes_received - received < LIMIT + 4096
            assert str(REF) in str(err.value) and "maxReplyBytes" in str(err.value)
            assert session.stats.errors["reply_too_large"] == 1
        finally:
            sim.clear(name)
            await session.abort()
        # The meter is fine again once the fault is gone: a new association reads it.
        session = await _session(sim, name)
        try:
            assert (await session.read([REF]))[0].ok
        finally:
            await session.abort()

    asyncio.run(scenario())


@pytest.mark.parametrize("name", ["w", "h"])
@pytest.mark.parametrize("shape,what", [("short_octets", "octet string claims 65535 bytes"),
                                        ("huge_array", "array claims 2147483648 elements")])
def test_malformed_value_is_an_error_naming_the_attribute(sim, name, shape, what):
    async def scenario():
        session = await _session(sim, name)
        sim.inject(name, Fault("malformed_value", obis=FIRMWARE, shape=shape))
        try:
            with pytest.raises(MalformedReply) as err:
                await asyncio.wait_for(session.read([REF]), 20)
            assert what in str(err.value) and str(REF) in str(err.value), str(err.value)
        finally:
            sim.clear(name)
            await session.abort()

    asyncio.run(scenario())


@pytest.mark.parametrize("apdu,message", [
    ("c40181000982ffff4142", "octet string claims 65535 bytes, reply holds 2"),
    ("c401810001848000000011 01".replace(" ", ""), "array claims 2147483648 elements"),
    ("c4038102001105000982ffff4142", "octet string claims 65535 bytes"),
    ("c40381020011", "data type 17 needs 1 bytes, reply holds 0"),
    ("c40381050011", "reply claims 5 results, holds 2 bytes"),
    ("c4018100108a", "data type 16 needs 2 bytes, reply holds 1"),
])
def test_fast_decoder_refuses_malformed_a_xdr(apdu, message):
    with pytest.raises(axdr.Malformed, match=message):
        axdr.parse_get_response(bytes.fromhex(apdu))


def test_with_list_names_the_malformed_position():
    with pytest.raises(axdr.Malformed) as err:
        axdr.parse_get_response(bytes.fromhex("c4038102001105000982ffff4142"))
    assert err.value.index == 1


@pytest.mark.parametrize("value,type_name", [(5, "octet_string"), ([1], "string"), ("word", "datetime")])
def test_unencodable_write_is_refused_and_keeps_the_association(sim, value, type_name):
    async def scenario():
        session = await _session(sim, "w")
        try:
            associations = sim.stats("w")["associations"]
            requests = sim.stats("w")["requests"]
            with pytest.raises(InvalidValue):
                await session.set(AttributeRef.of("0.0.1.0.0.255", 8, 2), value, type_name)
            assert session.associated
            assert sim.stats("w")["requests"] == requests  # nothing was sent
            assert (await session.read([REF]))[0].ok
            assert sim.stats("w")["associations"] == associations
            assert not session.stats.errors
        finally:
            await session.abort()

    asyncio.run(scenario())
