"""The meter's side of HLS passes 3 and 4, written apart from gurux's client code (fix 20).

Each mechanism is the Green Book's definition, with standard primitives (hashlib and the
``cryptography`` package), so a client bug cannot be mirrored by the simulator: the client's
f(StoC) is checked here, and f(CtoS) computed here, not by ``GXSecure`` which the client uses.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gurux_dlms.enums import Authentication

SERVER_MECHANISMS = (Authentication.HIGH, Authentication.HIGH_MD5, Authentication.HIGH_SHA1,
                     Authentication.HIGH_SHA256, Authentication.HIGH_ECDSA)


def _pad16(data: bytes, size: int) -> bytes:
    return data + bytes(size - len(data))


def _aes_ecb(challenge: bytes, secret: bytes) -> bytes:
    """Mechanism 2 as gurux and most meters do it: the challenge, zero-padded to whole blocks,
    AES-128-ECB encrypted with the secret zero-padded to 16 bytes."""
    size = max(len(challenge), len(secret))
    size += -size % 16
    enc = Cipher(algorithms.AES(_pad16(secret, 16)[:16]), modes.ECB()).encryptor()
    return enc.update(_pad16(challenge, size)) + enc.finalize()


def _digest(mechanism: int, challenge: bytes, secret: bytes, own: bytes, peer: bytes, first: bytes,
            second: bytes) -> bytes:
    if mechanism == Authentication.HIGH:
        return _aes_ecb(challenge, secret)
    if mechanism == Authentication.HIGH_MD5:
        return hashlib.md5(challenge + secret).digest()
    if mechanism == Authentication.HIGH_SHA1:
        return hashlib.sha1(challenge + secret).digest()
    # HIGH_SHA256: SHA-256(secret || sender's title || receiver's title || challenges)
    return hashlib.sha256(secret + own + peer + first + second).digest()


def _hash_of(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    return hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA256()


def client_proof(settings: Any, association: Any, answer: bytes) -> bool | None:
    """True when ``answer`` is the client's correct f(StoC); None otherwise."""
    mech = settings.authentication
    stoc, ctos = bytes(settings.stoCChallenge), bytes(settings.ctoSChallenge)
    client_title = bytes(settings.sourceSystemTitle or b"")
    meter_title = bytes(settings.cipher.systemTitle or b"")
    if mech == Authentication.HIGH_ECDSA:
        public = association.client_public_key
        if public is None or len(answer) != 2 * (public.curve.key_size // 8):
            return None
        size = public.curve.key_size // 8
        signature = encode_dss_signature(int.from_bytes(answer[:size], "big"), int.from_bytes(answer[size:], "big"))
        try:
            public.verify(signature, client_title + meter_title + stoc + ctos, ec.ECDSA(_hash_of(public)))
        except InvalidSignature:
            return None
        return True
    secret = bytes(association.secret or b"")
    expected = _digest(mech, stoc, secret, client_title, meter_title, stoc, ctos)
    return True if hmac.compare_digest(expected, answer) else None


def server_proof(settings: Any, association: Any) -> bytes:
    """The meter's f(CtoS), or for HLS-ECDSA its signature (r || s) over the two titles and challenges."""
    mech = settings.authentication
    stoc, ctos = bytes(settings.stoCChallenge), bytes(settings.ctoSChallenge)
    client_title = bytes(settings.sourceSystemTitle or b"")
    meter_title = bytes(settings.cipher.systemTitle or b"")
    if mech == Authentication.HIGH_ECDSA:
        private = association.signing_key
        if getattr(association, "bad_signature", False):
            ctos = bytes(len(ctos))  # fault: a signature over the wrong data
        der = private.sign(meter_title + client_title + ctos + stoc, ec.ECDSA(_hash_of(private)))
        r, s = decode_dss_signature(der)
        size = private.curve.key_size // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    secret = bytes(association.secret or b"")
    return _digest(mech, ctos, secret, meter_title, client_title, ctos, stoc)
