"""What the session says when the meter's answer to the AARQ is not a credential verdict (issue 11,
items 8 and 16): a meter that cannot decipher our AARQ ("ciphering failed"), and an AARE that
negotiates a maximum PDU size of 0 or 1. Real TCP sockets to the simulator."""
from __future__ import annotations

import asyncio

import pytest

from tb_dlms.protocol.errors import CipheringFailed, PduSizeRefused
from tb_dlms.protocol.readings import AttributeRef
from tb_dlms.protocol.session import MeterSession
from tb_dlms.protocol.settings import Authentication, Interface, MeterSettings, Secret, Security
from tb_dlms.simulator.simulator import Simulator
from tb_dlms.simulator.spec import MeterSpec

VOLTAGE = AttributeRef.of("1.0.32.7.0.255")


@pytest.fixture(scope="module")
def sim():
    specs = [MeterSpec("gmac", auth="high_gmac", deciphering_error_reply=True),
             MeterSpec("gmac-hdlc", interface="hdlc", auth="high_gmac", deciphering_error_reply=True),
             MeterSpec("pdu-0", aare_max_pdu=0), MeterSpec("pdu-1", auth="low", aare_max_pdu=1),
             MeterSpec("pdu-1-hdlc", interface="hdlc", aare_max_pdu=1)]
    with Simulator(specs) as s:
        yield s


def settings(sim: Simulator, name: str, **over) -> MeterSettings:
    spec = sim.meter(name).spec
    auth = Authentication(spec.auth)
    kw = dict(host="127.0.0.1", port=sim.port_of(name), interface=Interface(spec.interface),
              client_address=spec.client_address or 16, logical_address=spec.logical_address,
              authentication=auth, timeout=2.0, retries=0, name=name)
    if auth is Authentication.LOW:
        kw["password"] = Secret(spec.password.encode())
    if auth is Authentication.HIGH_GMAC:
        kw["security"] = Security(b"TBDLMS01", Secret(spec.block_cipher_key), Secret(spec.authentication_key))
    kw.update(over)
    return MeterSettings(**kw)


async def first_error(s: MeterSettings) -> BaseException:
    session = MeterSession(s)
    try:
        readings = await session.read([VOLTAGE])
        raise AssertionError(f"{s.name} answered: {readings}")
    except Exception as exc:  # noqa: BLE001 - the error is what is tested
        return exc
    finally:
        await session.close()


@pytest.mark.parametrize("meter", ["gmac", "gmac-hdlc"])
@pytest.mark.parametrize("wrong", ["block_cipher_key", "authentication_key"])
def test_a_wrong_key_is_a_ciphering_failure(sim, meter, wrong):
    spec = sim.meter(meter).spec
    keys = {"block_cipher_key": spec.block_cipher_key, "authentication_key": spec.authentication_key}
    keys[wrong] = bytes(16)
    bad = Security(b"TBDLMS01", Secret(keys["block_cipher_key"]), Secret(keys["authentication_key"]))
    exc = asyncio.run(first_error(settings(sim, meter, security=bad)))
    assert isinstance(exc, CipheringFailed), repr(exc)
    assert exc.kind == "ciphering" and "Ciphering failed" in str(exc)
    assert bytes(16).hex() not in str(exc)


def test_right_keys_still_associate(sim):
    async def go():
        session = MeterSession(settings(sim, "gmac"))
        try:
            return await session.read([VOLTAGE])
        finally:
            await session.close()

    assert asyncio.run(go())[0].ok


@pytest.mark.parametrize("meter,size", [("pdu-0", 0), ("pdu-1", 1), ("pdu-1-hdlc", 1)])
def test_an_unusable_negotiated_pdu_size_is_named(sim, meter, size):
    exc = asyncio.run(first_error(settings(sim, meter)))
    assert isinstance(exc, PduSizeRefused), repr(exc)
    assert exc.negotiated == size and exc.kind == "pdu_size"
    assert f"maximum PDU size of {size} bytes" in str(exc)
    assert "password" not in str(exc)
