"""Key agreement (Security Setup method 3, suites 1 and 2) over real TCP sockets, and the KDF and
ECDH against NIST CAVP known answers.

The simulator's meter side (simulator/hls.py) is a second implementation (hashlib KDF), and both
KDFs are checked against the same published vector, so client and meter cannot agree on a wrong
key together.
"""
from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tb_dlms.protocol import key_agreement
from tb_dlms.protocol.errors import KeyAgreementFailed
from tb_dlms.protocol.readings import AttributeRef
from tb_dlms.protocol.session import MeterSession
from tb_dlms.protocol.settings import KeyAgreement
from tb_dlms.simulator import hls, keys
from tb_dlms.simulator.client_config import CLIENT_SYSTEM_TITLE, meter_settings_for
from tb_dlms.simulator.simulator import Simulator
from tb_dlms.simulator.spec import MeterSpec

REGISTERS = [AttributeRef.of(o) for o in ("1.0.32.7.0.255", "1.0.1.8.0.255")]

# NIST CAVP KAS ECC (SP 800-56A), KASValidityTest_ECCOnePassDH_KDFConcat_NOKC_init.fax, [EC - SHA256]
# (P-256, concatenation KDF with SHA-256, 128-bit key: suite 1's parameters), first "P" case.
CAVP_DS_CAVS = 0x7F73262F313ADB4CCA2DA50A401E7D1888B07E67EC5EFE0FA32BE786501F4E6E
CAVP_DE_IUT = 0x377EEC0E61DD4793221F5BC2707A7A925DC99238DDD7789680499C417481CC65
CAVP_OI = bytes.fromhex("a1b2c3d4e54341565369645ff2a7ecdff74a2edbf3c0c951ff92b5a401d73e40c9f8b87c59b76ec4"
                        "8370dbf7ba9e1d")
CAVP_Z = bytes.fromhex("1f951cb28f32c293650e7c29744630cba92b62be1d094df41d6b529e854b843e")
CAVP_DKM = bytes.fromhex("0b4aa3215a8bbee3946949aede77eb18")

# NIST CAVP ECC CDH primitive (SP 800-56A 5.7.1.2), ecccdhtestvectors.zip, [P-384] COUNT = 0.
CDH_QX = "a7c76b970c3b5fe8b05d2838ae04ab47697b9eaf52e764592efda27fe7513272734466b400091adbf2d68c58e0c50066"
CDH_QY = "ac68f19f2e1cb879aed43a9969b91a0839c4c38a49749b661efedf243451915ed0905a32b060992b468c64766fc8437a"
CDH_D = 0x3CC3122A68F0D95027AD38C067916BA0EB8C38894D22E1B15618B6818A661774AD463B205DA88CF699AB4D43C9CF98A1
CDH_Z = "5f9d29dc5e31a163060356213669c8ce132e22f57c9a04f40ba7fcead493b457e5621e766c40a2e3d4d6a04b25e533f1"


def test_concatenation_kdf_nist_cavp_vector():
    iut = ec.derive_private_key(CAVP_DE_IUT, ec.SECP256R1())
    cavs = ec.derive_private_key(CAVP_DS_CAVS, ec.SECP256R1()).public_key()
    z = iut.exchange(ec.ECDH(), key_agreement.public_key_from_xy(1, key_agreement.public_xy(cavs)))
    assert z == CAVP_Z
    assert key_agreement.kdf(1, z, CAVP_OI) == CAVP_DKM  # the client's (cryptography ConcatKDFHash)
    assert hls.concat_kdf(1, z, CAVP_OI) == CAVP_DKM  # the simulated meter's (hashlib)


def test_p384_ecdh_from_raw_coordinates_nist_cavp_vector():
    peer = key_agreement.public_key_from_xy(2, bytes.fromhex(CDH_QX + CDH_QY))
    assert ec.derive_private_key(CDH_D, ec.SECP384R1()).exchange(ec.ECDH(), peer).hex() == CDH_Z


def test_suite_2_kdf_is_sha384_and_both_sides_agree_on_the_longer_outputs():
    z, info = bytes(range(48)), key_agreement.other_info(2, CLIENT_SYSTEM_TITLE, b"SIM00001")
    assert info[:7] == bytes.fromhex("60857405080301")
    assert len(key_agreement.kdf(2, z, info)) == 32
    # 64 bytes take two SHA-384 blocks: the counter is really counted, on both sides.
    assert key_agreement.kdf(2, z, info, 64) == hls.concat_kdf(2, z, info, 64)


def test_request_is_signed_over_key_id_and_the_ephemeral_point():
    signing = keys.private_key(keys.CLIENT, 1)
    agreement = key_agreement.initiate(1)
    ((key_id, xy, signature),) = key_agreement.decode(agreement.request(signing), 1)
    assert key_id == 0 and xy == key_agreement.public_xy(agreement.ephemeral.public_key())
    assert key_agreement.verify(signing.public_key(), 0, xy, signature)
    assert not key_agreement.verify(signing.public_key(), 2, xy, signature)


def test_an_answer_that_is_not_one_is_refused_clearly():
    agreement = key_agreement.initiate(1)
    meter = keys.private_key("m", 1).public_key()
    with pytest.raises(key_agreement.KeyAgreementError, match="not an array"):
        agreement.complete(0, meter, CLIENT_SYSTEM_TITLE, b"SIM00001")
    with pytest.raises(key_agreement.KeyAgreementError, match="128-byte"):
        agreement.complete([[0, b"short"]], meter, CLIENT_SYSTEM_TITLE, b"SIM00001")


@pytest.fixture(scope="module")
def sim():
    specs = [MeterSpec(name=f"agree{n}", auth="high_ecdsa", security_suite=n, require_key_agreement=True)
             for n in (1, 2)]
    specs.append(MeterSpec(name="agree-gmac", auth="high_gmac", security_suite=1, require_key_agreement=True))
    specs.append(MeterSpec(name="agree-bad", auth="high_ecdsa", security_suite=2, require_key_agreement=True,
                           bad_key_agreement_signature=True))
    with Simulator(specs) as s:
        yield s


def settings(sim, name, **over):
    return meter_settings_for(sim.meter(name).spec, sim.port_of(name), **over)


async def _read_twice(s):
    session = MeterSession(s)
    try:
        return await session.read(REGISTERS) + await session.read(REGISTERS), session.stats.associations
    finally:
        await session.close()


@pytest.mark.parametrize("name", ["agree1", "agree2", "agree-gmac"])
def test_meter_requiring_key_agreement_is_read(sim, name):
    before = sim.stats(name)["key_agreements"]
    readings, associations = asyncio.run(_read_twice(settings(sim, name)))
    assert all(r.ok for r in readings), [r.error for r in readings if not r.ok]
    assert 180 < readings[0].value < 260
    # The meter ciphered with the agreed key from its answer on: the reads above needed it.
    assert sim.stats(name)["key_agreements"] - before == associations == 1


def test_without_key_agreement_the_meter_refuses_every_read(sim):
    s = settings(sim, "agree1")
    s = replace(s, security=replace(s.security, key_agreement=KeyAgreement.NONE))
    readings, _ = asyncio.run(_read_twice(s))
    assert [r.error for r in readings if r.ok] == []
    assert all("read-write-denied" in r.error for r in readings)


def test_each_association_agrees_a_new_key(sim):
    async def go():
        session = MeterSession(settings(sim, "agree2"))
        try:
            await session.read(REGISTERS)
            await session.abort()
            return await session.read(REGISTERS), session.stats.associations
        finally:
            await session.close()

    before = sim.stats("agree2")["key_agreements"]
    readings, associations = asyncio.run(go())
    assert all(r.ok for r in readings) and associations == 2
    assert sim.stats("agree2")["key_agreements"] - before == 2


def test_bad_meter_signature_on_the_agreement_is_refused_clearly(sim):
    async def go():
        session = MeterSession(settings(sim, "agree-bad", retries=0))
        try:
            with pytest.raises(KeyAgreementFailed) as exc:
                await session.read(REGISTERS)
            assert session.stats.errors.get("key_agreement") == 1
            return str(exc.value)
        finally:
            await session.close()

    message = asyncio.run(go())
    assert message == ("agree-bad: key agreement failed: the meter's signature on its ephemeral key does not "
                       "verify (check security.meterPublicKey)")


def test_gurux_server_key_agreement_defect_still_there():
    """What simulator fix security_setup_key_agreement replaces: gurux's method 3 sets ``e.rror``
    (a typo) and so answers success with no keys. When this fails, gurux fixed it: drop the fix."""
    from gurux_dlms import ValueEventArgs
    from gurux_dlms.GXDLMSSettings import GXDLMSSettings
    from gurux_dlms.objects import GXDLMSSecuritySetup

    from tb_dlms.simulator import gurux_fixes

    gurux_fixes.apply()
    shipped = GXDLMSSecuritySetup.invoke.__wrapped__
    settings = GXDLMSSettings(True, None)
    obj = GXDLMSSecuritySetup("0.0.43.0.0.255")
    e = ValueEventArgs(settings, obj, 3, 0, [[0, bytes(128)]])
    assert shipped(obj, settings, e) is None
    assert e.error == 0 and e.rror != 0


def test_bad_meter_signature_is_diagnosed_as_key_agreement(sim):
    from tb_dlms.tools.diagnosis import diagnose

    s = settings(sim, "agree-bad", retries=0)

    async def go():
        session = MeterSession(s)
        try:
            await session.connect()
        except KeyAgreementFailed as exc:
            return exc
        finally:
            await session.close()

    diagnosis = diagnose(asyncio.run(go()), s)
    assert diagnosis.kind == "key_agreement" and "meterPublicKey" in diagnosis.hint, diagnosis
    assert "does not verify" in diagnosis.cause
