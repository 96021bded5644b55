"""gurux must not write to stdout, and must never log key material."""
from __future__ import annotations

import importlib
import logging
import sys
import types

import pytest

from gurux_dlms import GXByteBuffer
from gurux_dlms.AesGcmParameter import AesGcmParameter
from gurux_dlms.GXDLMSSettings import GXDLMSSettings
from gurux_dlms.enums import Authentication, Command, Security

from tb_dlms.protocol import quiet

LOGGER = "tb_dlms.gurux"
Chippering = importlib.import_module("gurux_dlms.GXDLMSChippering").GXDLMSChippering
GXSecure = importlib.import_module("gurux_dlms.GXSecure").GXSecure


@pytest.fixture
def silenced(caplog):
    quiet.silence_gurux(LOGGER)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


def _gurux_messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def _ciphered_reply() -> bytes:
    key, ak, title = bytearray(range(16)), bytearray(range(16, 32)), bytearray(8)
    p = AesGcmParameter(Command.GLO_GET_RESPONSE, title, key, ak)
    p.security = Security.AUTHENTICATION_ENCRYPTION
    p.invocationCounter = 5
    return bytes(Chippering.encryptAesGcm(p, bytearray(b"\xc4\x01\xc1\x00\x06\x00\x00\x00\x2a")))


def _parse_ciphered_reply(frame: bytes) -> bytes:
    key, ak, title = bytearray(range(16)), bytearray(range(16, 32)), bytearray(8)
    p = AesGcmParameter(0, title, key, ak)
    return bytes(Chippering.decryptAesGcm(None, p, GXByteBuffer(bytearray(frame))))


def test_ciphered_reply_goes_to_log_not_stdout(silenced, capsys):
    assert _parse_ciphered_reply(_ciphered_reply())[:1] == b"\xc4"
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    msgs = _gurux_messages(silenced)
    assert "Encryption is applied." in msgs
    assert "Authentication is applied." in msgs
    assert all(r.levelno == logging.DEBUG for r in silenced.records if r.name == LOGGER)


def test_invalid_hdlc_frame_goes_to_log(silenced, capsys):
    assert GXDLMSSettings(False, None).checkFrame(0x54, None) is False
    assert capsys.readouterr().out == ""
    assert any(m.startswith("Invalid HDLC Frame: 0x54") for m in _gurux_messages(silenced))


class _FakeKey:
    """Stands in for an ECDSA private key. gurux prints its hex before signing."""

    SECRET_HEX = "C0FFEE00DEADBEEF0123456789ABCDEF"

    def toHex(self):
        return self.SECRET_HEX

    def getPublicKey(self):
        return self


def test_private_signing_key_never_logged(silenced, capsys):
    settings = types.SimpleNamespace(
        authentication=Authentication.HIGH_ECDSA,
        cipher=types.SimpleNamespace(signingKeyPair=(_FakeKey(), _FakeKey())),
    )
    # GXSecure.secure prints "Private signed key: <hex>" and then signs. The
    # fake key can't be used to sign, so the exception after the print is expected.
    with pytest.raises(ValueError):
        GXSecure.secure(settings, settings.cipher, 0, b"challenge", b"secret")
    captured = capsys.readouterr()
    assert _FakeKey.SECRET_HEX not in captured.out + captured.err
    assert captured.out == ""
    for record in silenced.records:
        assert _FakeKey.SECRET_HEX not in record.getMessage()
        assert "signed key" not in record.getMessage()


def test_sensitive_messages_dropped_whole(silenced, capsys):
    chippering_mod = importlib.import_module("gurux_dlms.GXDLMSChippering")
    chippering_mod.print("Private signing key: " + "AB" * 16)
    chippering_mod.print("Public signing key:", "CD" * 16)
    chippering_mod.print("shared secret", b"\x01\x02")
    chippering_mod.print("LLS password is", "12345678")
    chippering_mod.print("Compression", "is", "used.", sep="-")
    assert capsys.readouterr().out == ""
    assert _gurux_messages(silenced) == ["Compression-is-used."]


def test_idempotent_and_no_duplicates(silenced, capsys):
    quiet.silence_gurux(LOGGER)
    quiet.silence_gurux(LOGGER)
    GXDLMSSettings(False, None).checkFrame(0x54, None)
    assert capsys.readouterr().out == ""
    assert len([m for m in _gurux_messages(silenced) if m.startswith("Invalid HDLC")]) == 1


def test_every_printing_gurux_module_is_covered(silenced):
    """Includes modules gurux would only import lazily, after silence_gurux() ran."""
    printing = [
        name for name, mod in sys.modules.items()
        if name.startswith("gurux_dlms") and mod is not None and quiet._calls_print(mod)
    ]
    assert "gurux_dlms.GXDLMSChippering" in printing
    assert "gurux_dlms.objects.GXDLMSSecuritySetup" in printing
    assert "gurux_dlms.manufacturersettings.GXManufacturerCollection" in printing
    for name in printing:
        assert sys.modules[name].__dict__.get("print") is quiet._gurux_print, name


def test_star_import_does_not_leak_print(silenced):
    for module in ("gurux_dlms", "gurux_dlms.enums", "gurux_dlms.GXDLMSChippering",
                   "gurux_dlms.GXDLMSClient"):
        ns: dict = {}
        exec(f"from {module} import *", ns)  # noqa: S102
        assert "print" not in ns, module
    ns = {}
    exec("from gurux_dlms.GXDLMSChippering import *", ns)  # noqa: S102
    assert "GXDLMSChippering" in ns  # the pinned __all__ still exports the real API


def test_disabled_logger_is_silent_too(capsys, caplog):
    quiet.silence_gurux(LOGGER)
    caplog.set_level(logging.INFO, logger=LOGGER)
    _parse_ciphered_reply(_ciphered_reply())
    assert capsys.readouterr().out == ""
    assert _gurux_messages(caplog) == []


def test_logger_name_can_be_moved(capsys, caplog):
    try:
        quiet.silence_gurux("tb_dlms.test_other")
        caplog.set_level(logging.DEBUG, logger="tb_dlms.test_other")
        GXDLMSSettings(False, None).checkFrame(0x54, None)
        assert capsys.readouterr().out == ""
        assert any(r.name == "tb_dlms.test_other" for r in caplog.records)
    finally:
        quiet.silence_gurux(LOGGER)
