"""Check that the cryptography-backed GCM produces exactly gurux's bytes.

Both sides run through gurux's own ``encryptAesGcm``/``decryptAesGcm``, so the
tests also cover the framing around the cipher: security header, invocation
counter, system title and length. Only the stream differs. Tests swap the stream
directly (``_stream``) rather than calling install()/uninstall() for every
hypothesis example. install() runs a pure-Python self-test each time, which
would make the run noticeably slower.
"""
from __future__ import annotations

import contextlib
import importlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gurux_dlms import GXByteBuffer, GXReplyData
from gurux_dlms.AesGcmParameter import AesGcmParameter
from gurux_dlms.CountType import CountType
from gurux_dlms.GXDLMSChipperingStream import GXDLMSChipperingStream as OriginalStream
from gurux_dlms.enums import Authentication, Command, InterfaceType, Security
from gurux_dlms.objects import GXDLMSRegister
from gurux_dlms.secure import GXDLMSSecureClient

from tb_dlms.protocol import fast_gcm
from tb_dlms.protocol.fast_gcm import FastGcmStream

chippering_mod = importlib.import_module("gurux_dlms.GXDLMSChippering")
Chippering = chippering_mod.GXDLMSChippering

POLICIES = [Security.AUTHENTICATION, Security.ENCRYPTION, Security.AUTHENTICATION_ENCRYPTION]
# Glo tags carry no system title; general-glo carries it in the APDU.
TAGS = [Command.GLO_GET_REQUEST, Command.GLO_GET_RESPONSE, Command.GENERAL_GLO_CIPHERING]
IMPLS = {"original": OriginalStream, "patched": FastGcmStream}

KEY = "000102030405060708090A0B0C0D0E0F"
AK = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
CLIENT_TITLE = "4D4D4D0000BC614E"
SERVER_TITLE = "4D4D4D0000000001"

# Pure-Python gurux takes ~1 ms per 16-byte block; keep examples modest.
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def _stream(cls):
    saved = chippering_mod.GXDLMSChipperingStream
    chippering_mod.GXDLMSChipperingStream = cls
    try:
        yield
    finally:
        chippering_mod.GXDLMSChipperingStream = saved


@pytest.fixture(autouse=True)
def _restore_gurux():
    saved = chippering_mod.GXDLMSChipperingStream
    yield
    fast_gcm.uninstall()
    chippering_mod.GXDLMSChipperingStream = saved


def _param(policy, tag, key, ak, title, ic):
    p = AesGcmParameter(tag, bytearray(title), bytearray(key), bytearray(ak))
    p.security = policy
    p.invocationCounter = ic
    return p


def _encrypt(impl, policy, tag, key, ak, title, ic, pt):
    with _stream(IMPLS[impl]):
        p = _param(policy, tag, key, ak, title, ic)
        return bytes(Chippering.encryptAesGcm(p, bytearray(pt))), p


def _decrypt(impl, frame, key, ak, title):
    with _stream(IMPLS[impl]):
        # decryptAesGcm takes security and IC from the frame itself.
        p = AesGcmParameter(0, bytearray(title), bytearray(key), bytearray(ak))
        return bytes(Chippering.decryptAesGcm(None, p, GXByteBuffer(bytearray(frame)))), p


cases = st.fixed_dictionaries({
    "policy": st.sampled_from(POLICIES),
    "tag": st.sampled_from(TAGS),
    "key": st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32),
    "ak": st.binary(min_size=16, max_size=16),
    "title": st.binary(min_size=8, max_size=8),
    "ic": st.integers(min_value=0, max_value=0xFFFFFFFF),
    "pt": st.binary(min_size=0, max_size=200),
})


@SLOW
@given(c=cases)
def test_apdu_bytes_identical_and_cross_decrypt(c):
    args = (c["policy"], c["tag"], c["key"], c["ak"], c["title"], c["ic"], c["pt"])
    orig, p_orig = _encrypt("original", *args)
    fast, p_fast = _encrypt("patched", *args)
    assert fast == orig
    if c["policy"] != Security.ENCRYPTION:
        assert p_fast.countTag == p_orig.countTag and len(p_fast.countTag) == 12

    for encrypted_by in ("original", "patched"):
        frame = orig if encrypted_by == "original" else fast
        for decrypted_by in ("original", "patched"):
            pt, p = _decrypt(decrypted_by, frame, c["key"], c["ak"], c["title"])
            assert pt == c["pt"], (encrypted_by, decrypted_by)
            assert p.invocationCounter == c["ic"] and p.security == c["policy"]


@SLOW
@given(
    policy=st.sampled_from([Security.AUTHENTICATION, Security.AUTHENTICATION_ENCRYPTION]),
    key=st.binary(min_size=16, max_size=16),
    aad_extra=st.binary(min_size=0, max_size=40),
    title=st.binary(min_size=8, max_size=8),
    ic=st.integers(min_value=0, max_value=0xFFFFFFFF),
    count_type=st.sampled_from([CountType.TAG, CountType.DATA, CountType.TAG | CountType.DATA]),
    pt=st.binary(min_size=0, max_size=64),
)
def test_gmac_count_types_identical(policy, key, aad_extra, title, ic, count_type, pt):
    """The HIGH_GMAC challenge path (GXSecure.secure) uses CountType.TAG without a packet header."""
    outs = []
    for impl in ("original", "patched"):
        with _stream(IMPLS[impl]):
            p = _param(policy, 0, key, aad_extra.ljust(16, b"\0")[:16], title, ic)
            p.type_ = count_type
            outs.append((bytes(Chippering.encryptAesGcm(p, bytearray(pt))), bytes(p.countTag or b"")))
    assert outs[0] == outs[1]


@SLOW
@given(c=cases, flip=st.integers(min_value=0, max_value=12 * 8 - 1))
def test_tampered_tag_rejected(c, flip):
    if c["policy"] == Security.ENCRYPTION:
        c["policy"] = Security.AUTHENTICATION_ENCRYPTION  # encryption-only has no tag
    frame, _ = _encrypt("original", c["policy"], c["tag"], c["key"], c["ak"], c["title"], c["ic"], c["pt"])
    bad = bytearray(frame)
    bad[len(bad) - 12 + flip // 8] ^= 1 << (flip % 8)
    with pytest.raises(ValueError, match="Invalid tag"):
        _decrypt("patched", bad, c["key"], c["ak"], c["title"])
    if c["policy"] == Security.AUTHENTICATION:
        # gurux itself rejects a bad GMAC the same way.
        with pytest.raises(ValueError, match="Invalid tag"):
            _decrypt("original", bad, c["key"], c["ak"], c["title"])


def test_original_gurux_ignores_auth_enc_tag():
    """Records the gurux hole the patch closes.

    If this starts failing, gurux has begun checking the tag itself.
    """
    key, ak, title = bytes(range(16)), bytes(range(16, 32)), bytes(8)
    frame, _ = _encrypt("original", Security.AUTHENTICATION_ENCRYPTION, Command.GLO_GET_RESPONSE,
                        key, ak, title, 7, b"hello meter")
    bad = bytearray(frame)
    bad[-12:] = bytes(12)
    pt, _ = _decrypt("original", bad, key, ak, title)
    assert pt == b"hello meter"
    with pytest.raises(ValueError, match="Invalid tag"):
        _decrypt("patched", bad, key, ak, title)


def test_wrong_key_rejected():
    key, ak, title = bytes(range(16)), bytes(range(16, 32)), bytes(8)
    frame, _ = _encrypt("patched", Security.AUTHENTICATION_ENCRYPTION, Command.GLO_GET_RESPONSE,
                        key, ak, title, 7, b"x" * 40)
    with pytest.raises(ValueError, match="Invalid tag"):
        _decrypt("patched", frame, bytes(16), ak, title)
    with pytest.raises(ValueError, match="Invalid tag"):
        _decrypt("patched", frame, key, bytes(16), title)  # AK is in the AAD


def test_unusual_inputs_fall_back_to_gurux():
    # 6-byte system title -> 10-byte IV, which gurux turns into a non-standard J0.
    s = FastGcmStream(Security.AUTHENTICATION_ENCRYPTION, True, bytearray(16), bytearray(17),
                      bytearray(10), None)
    assert type(s) is OriginalStream
    s = FastGcmStream(Security.NONE, True, bytearray(16), bytearray(17), bytearray(12), None)
    assert type(s) is OriginalStream
    s = FastGcmStream(Security.AUTHENTICATION_ENCRYPTION, True, bytearray(16), bytearray(17),
                      bytearray(12), None)
    assert type(s) is FastGcmStream


def test_install_uninstall_idempotent():
    was_installed = fast_gcm.installed()  # the session installs it at import
    fast_gcm.uninstall()
    assert chippering_mod.GXDLMSChipperingStream is OriginalStream
    assert fast_gcm.install() is True
    assert fast_gcm.install() is True
    assert chippering_mod.GXDLMSChipperingStream is FastGcmStream
    assert fast_gcm.installed()
    # Only the GCM user is rebound; key wrap / AES-1 users keep the original.
    gxsecure = importlib.import_module("gurux_dlms.GXSecure")
    client_mod = importlib.import_module("gurux_dlms.secure.GXDLMSSecureClient")
    assert gxsecure.GXDLMSChipperingStream is OriginalStream
    assert client_mod.GXDLMSChipperingStream is OriginalStream
    fast_gcm.uninstall()
    fast_gcm.uninstall()
    assert chippering_mod.GXDLMSChipperingStream is OriginalStream
    assert not fast_gcm.installed()
    if was_installed:
        fast_gcm.install()


# ---------------------------------------------------------------- end to end

def _client(ic=1234):
    c = GXDLMSSecureClient(True, 16, 1, Authentication.HIGH_GMAC, None, InterfaceType.WRAPPER)
    c.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
    c.ciphering.systemTitle = GXByteBuffer.hexToBytes(CLIENT_TITLE)
    c.ciphering.blockCipherKey = GXByteBuffer.hexToBytes(KEY)
    c.ciphering.authenticationKey = GXByteBuffer.hexToBytes(AK)
    c.ciphering.invocationCounter = ic
    c.ctoSChallenge = bytearray(range(1, 17))  # fixed, else the AARQ is random
    return c


def _client_frames(ic):
    c = _client(ic)
    aarq = [bytes(f) for f in c.aarqRequest()]
    c = _client(ic)
    get = [bytes(f) for f in c.read(GXDLMSRegister("1.0.1.8.0.255"), 2)]
    return aarq, get


@pytest.mark.parametrize("ic", [0, 1234, 0xFFFFFFFE])
def test_client_frames_identical(ic):
    fast_gcm.uninstall()
    aarq_orig, get_orig = _client_frames(ic)
    assert fast_gcm.install()
    aarq_fast, get_fast = _client_frames(ic)
    assert get_fast == get_orig
    assert aarq_fast == aarq_orig  # carries the GLO-initiate-request, ciphered
    wrapper_hdr = 8
    assert get_fast[0][wrapper_hdr] == Command.GLO_GET_REQUEST
    assert get_fast[0][wrapper_hdr + 2] == 0x30  # SC: auth + enc, suite 0


def _server_reply(value: int, ic: int) -> bytes:
    """Build a ciphered GET response as a meter would, via gurux's encrypt path."""
    plain = bytes([0xC4, 0x01, 0xC1, 0x00, 0x06]) + value.to_bytes(4, "big")
    p = _param(Security.AUTHENTICATION_ENCRYPTION, Command.GLO_GET_RESPONSE,
               bytes.fromhex(KEY), bytes.fromhex(AK), bytes.fromhex(SERVER_TITLE), ic)
    apdu = bytes(Chippering.encryptAesGcm(p, bytearray(plain)))
    return bytes.fromhex("00010001") + (16).to_bytes(2, "big") + len(apdu).to_bytes(2, "big") + apdu


def _client_parse(frame: bytes):
    c = _client()
    c.settings.sourceSystemTitle = GXByteBuffer.hexToBytes(SERVER_TITLE)
    reply = GXReplyData()
    c.getData(GXByteBuffer(bytearray(frame)), reply)
    return reply


def test_server_reply_identical_and_parsed_by_client():
    fast_gcm.uninstall()
    orig = _server_reply(42, 99)
    assert fast_gcm.install()
    fast = _server_reply(42, 99)
    assert fast == orig
    assert _client_parse(fast).value == 42

    bad = bytearray(fast)
    bad[-1] ^= 0x01
    with pytest.raises(ValueError, match="Invalid tag"):
        _client_parse(bytes(bad))


def test_open_sealed_matches_gurux_encryption_and_rejects_tampering():
    """The session's direct decrypt of glo-get-responses agrees with gurux's own encryption."""
    from cryptography.exceptions import InvalidTag

    frame = _server_reply(4242, 77)
    apdu = frame[8:]
    body = apdu[2:]  # tag CC, one-byte length
    key, ak, title = bytes.fromhex(KEY), bytes.fromhex(AK), bytes.fromhex(SERVER_TITLE)
    plain = fast_gcm.open_sealed(key, title + body[1:5], body[:1] + ak, body[5:-12], body[-12:])
    assert plain == bytes([0xC4, 0x01, 0xC1, 0x00, 0x06]) + (4242).to_bytes(4, "big")
    bad = bytearray(body)
    bad[-1] ^= 1
    with pytest.raises(InvalidTag):
        fast_gcm.open_sealed(key, title + bytes(bad[1:5]), bytes(bad[:1]) + ak, bytes(bad[5:-12]), bytes(bad[-12:]))
