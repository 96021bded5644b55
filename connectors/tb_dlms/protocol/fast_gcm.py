"""C-backed AES-GCM underneath gurux-dlms's DLMS ciphering.

gurux does AES and GHASH in pure Python, so a ciphered GET costs about 15x a
plain one. Every polled meter with High-GMAC or AES-GCM pays that cost on
every request and every reply.

Only the cipher primitive is swapped. ``GXDLMSChippering.encryptAesGcm`` and
``decryptAesGcm`` stay gurux's. They still build the security header, the
nonce (system title + invocation counter), the AAD (SC + AK [+ plaintext for
GMAC]) and the APDU framing. The one name we rebind is
``GXDLMSChipperingStream`` *as seen from the* ``gurux_dlms.GXDLMSChippering``
*module*. That is the object those two functions construct, feed and
finalise. ``GXSecure`` and ``GXDLMSSecureClient`` keep the original class for
the unrelated AES-1/key-wrap code (HIGH auth, key transfer).

Behaviour differs from stock gurux in one way, on purpose. On the
authenticated-encryption decrypt path gurux builds its stream with
``forEncrypt=True`` and never checks the received tag, so it accepts any
forged or corrupted APDU. Here a supplied tag is checked, and a mismatch
raises the same ``ValueError("Decrypt failed. Invalid tag.")`` that gurux
raises for GMAC-only messages.
"""
from __future__ import annotations

import hmac
import importlib
import threading
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["install", "uninstall", "installed", "FastGcmStream"]

_CHIPPERING_MODULE = "gurux_dlms.GXDLMSChippering"
_STREAM_MODULE = "gurux_dlms.GXDLMSChipperingStream"

_TAG_LEN = 12  # DLMS truncates the GCM tag to 96 bits
_IV_LEN = 12  # 8-byte system title + 4-byte invocation counter
_AES_KEY_LENS = (16, 24, 32)
_INVALID_TAG = "Decrypt failed. Invalid tag."

# Security levels as gurux encodes them in the security control byte.
_AUTH = 0x10
_ENC = 0x20
_AUTH_ENC = 0x30

_lock = threading.Lock()
_original_stream: type | None = None


def _gurux_stream_class() -> type:
    stream: type = importlib.import_module(_STREAM_MODULE).GXDLMSChipperingStream
    return stream


def _make_fast_stream_class(base: type) -> type:
    """Build the replacement as a subclass of gurux's stream.

    The subclass keeps ``tagsEquals`` and the other classmethods that
    ``decryptAesGcm`` calls on the name, and keeps ``isinstance`` checks
    working.
    """

    class FastGcmStream(base):  # type: ignore[misc]  # gurux is untyped: base is Any to mypy
        """Drop-in for the GCM uses of ``GXDLMSChipperingStream``.

        gurux's contract, which this class keeps (see ``GXDLMSChippering``):

        * encrypt: ``(security, True, key, aad, iv, None)``, ``write(pt)``
          unless GMAC-only, ``flushFinalBlock()`` returns ciphertext, and
          ``.tag`` holds the 12-byte tag;
        * decrypt: ``(security, True, key, aad, iv, tag)`` with the
          received tag (all zeros for encryption-only), ``write(ct)``,
          ``flushFinalBlock()`` returns plaintext.

        Anything outside that contract goes to the original class. That
        covers ``forEncrypt=False`` (gurux's own decrypt mode, which uses
        the inverse cipher for the keystream), IVs that are not 12 bytes
        (non-8-byte system titles, where gurux builds a non-standard J0),
        unusual key sizes and ``Security.NONE``. Those cases come out exactly
        as gurux would produce them.
        """

        def __new__(cls, forSecurity: Any = None, forEncrypt: bool = True, blockCipherKey: Any = None,
                    forAad: Any = None, iv: Any = None, forTag: Any = None) -> Any:
            if not _fast_path_applies(forSecurity, forEncrypt, blockCipherKey, iv, forTag):
                # Not an instance of cls, so Python skips FastGcmStream.__init__.
                return base(forSecurity, forEncrypt, blockCipherKey, forAad, iv, forTag)
            return object.__new__(cls)

        # pylint: disable=super-init-not-called
        def __init__(self, forSecurity: Any, forEncrypt: bool, blockCipherKey: Any, forAad: Any, iv: Any,
                     forTag: Any) -> None:
            # Skip gurux's __init__. Its key schedule and GHASH tables are
            # the cost we are removing.
            self.security = int(forSecurity)
            self.encrypt = forEncrypt
            self._key = bytes(blockCipherKey)
            self._aad = bytes(forAad) if forAad else b""
            self._iv = bytes(iv)
            self._expected = bytes(forTag) if forTag is not None else None
            self.tag = bytearray(forTag) if forTag is not None else bytearray(_TAG_LEN)
            self._data = bytearray()

        def write(self, input_: bytes | bytearray) -> None:
            self._data.extend(input_)

        def flushFinalBlock(self) -> bytearray:
            data = bytes(self._data)
            self._data = bytearray()
            if self.security == _ENC:
                # Encryption-only has no tag. GCM's keystream is plain CTR
                # from inc32(J0), which is the same both ways.
                ctr = Cipher(algorithms.AES(self._key),
                             modes.CTR(self._iv + b"\x00\x00\x00\x02")).encryptor()
                return bytearray(ctr.update(data) + ctr.finalize())
            if self._expected is None:
                sealed = AESGCM(self._key).encrypt(self._iv, data, self._aad or None)
                self.tag = bytearray(sealed[-16:-16 + _TAG_LEN])
                return bytearray(sealed[:-16])
            # AESGCM.decrypt only accepts full 16-byte tags, so use the
            # lower-level API to check DLMS's 12-byte tag.
            dec = Cipher(algorithms.AES(self._key),
                         modes.GCM(self._iv, self._expected,
                                   min_tag_length=_TAG_LEN)).decryptor()
            if self._aad:
                dec.authenticate_additional_data(self._aad)
            out = dec.update(data)
            try:
                out += dec.finalize()
            except InvalidTag:
                raise ValueError(_INVALID_TAG) from None
            return bytearray(out)

        def reset(self) -> None:
            self._data = bytearray()

        @classmethod
        def tagsEquals(cls, tag1: Any, tag2: Any) -> bool:
            # gurux's GMAC-only decrypt checks the tag with this. A
            # constant-time compare keeps timing from leaking how many
            # leading tag bytes a forgery got right.
            if tag1 is None or tag2 is None:
                return False
            return hmac.compare_digest(bytes(tag1[:_TAG_LEN]), bytes(tag2[:_TAG_LEN]))

    FastGcmStream.__qualname__ = FastGcmStream.__name__ = "FastGcmStream"
    FastGcmStream.__module__ = __name__
    return FastGcmStream


def _fast_path_applies(security: Any, forEncrypt: Any, key: Any, iv: Any, tag: Any) -> bool:
    try:
        sec = int(security)
    except (TypeError, ValueError):
        return False
    return (
        forEncrypt is True
        and sec in (_AUTH, _ENC, _AUTH_ENC)
        and key is not None
        and len(key) in _AES_KEY_LENS
        and iv is not None
        and len(iv) == _IV_LEN
        and (tag is None or len(tag) == _TAG_LEN)
    )


FastGcmStream = _make_fast_stream_class(_gurux_stream_class())


def _self_test(stream_cls: type, reference: type) -> bool:
    """Check one known case against gurux before patching.

    A later gurux could change the stream's calling contract. In that case we
    would rather stay slow than send wrong bytes to a meter.
    """
    key = bytes(range(16))
    iv = bytes(range(0x40, 0x40 + _IV_LEN))
    aad = b"\x30" + bytes(range(0xD0, 0xE0))
    pt = bytes(range(21))
    outs: list[tuple[bytes, bytes, bytes]] = []
    for cls in (reference, stream_cls):
        enc = cls(_AUTH_ENC, True, bytearray(key), bytearray(aad), bytearray(iv), None)
        enc.write(pt)
        ct = bytes(enc.flushFinalBlock())
        tag = bytes(enc.tag)
        dec = cls(_AUTH_ENC, True, bytearray(key), bytearray(aad), bytearray(iv), bytearray(tag))
        dec.write(ct)
        outs.append((ct, tag, bytes(dec.flushFinalBlock())))
    return outs[0] == outs[1] and outs[0][2] == pt


def installed() -> bool:
    mod: Any = importlib.import_module(_CHIPPERING_MODULE)  # gurux is untyped
    return mod.GXDLMSChipperingStream is FastGcmStream


def install() -> bool:
    """Route gurux's DLMS AES-GCM through ``cryptography``. Safe to call repeatedly.

    Returns True if the fast path is active afterwards. Returns False if the
    gurux layout is not the one this was written for, or the self-test
    fails. gurux is then left untouched.
    """
    global _original_stream
    with _lock:
        mod: Any = importlib.import_module(_CHIPPERING_MODULE)  # gurux is untyped
        current = getattr(mod, "GXDLMSChipperingStream", None)
        if current is FastGcmStream:
            return True
        base = _gurux_stream_class()
        if current is not base or not issubclass(FastGcmStream, base):
            return False
        if not _self_test(FastGcmStream, base):
            return False
        _original_stream = current
        mod.GXDLMSChipperingStream = FastGcmStream
        return True


def uninstall() -> None:
    """Put gurux's pure-Python stream back. Used by the equivalence tests and benchmark."""
    global _original_stream
    with _lock:
        mod: Any = importlib.import_module(_CHIPPERING_MODULE)  # gurux is untyped
        if mod.GXDLMSChipperingStream is FastGcmStream:
            mod.GXDLMSChipperingStream = _original_stream or _gurux_stream_class()
        _original_stream = None


def open_sealed(key: bytes, iv: bytes, aad: bytes, ciphertext: bytes, tag: bytes) -> bytes:
    """AES-GCM decrypt with DLMS's 12-byte tag; raises cryptography's InvalidTag on tampering."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    decryptor = Cipher(algorithms.AES(key), modes.GCM(iv, tag, min_tag_length=12)).decryptor()
    decryptor.authenticate_additional_data(aad)
    return decryptor.update(ciphertext) + decryptor.finalize()
