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


#: OtherInfo's AlgorithmID: OID 2.16.756.5.8.3.0 (AES-GCM-128, suite 1) / .1 (AES-GCM-256, suite 2).
_ALGORITHM_ID = {1: bytes((0x60, 0x85, 0x74, 0x05, 0x08, 0x03, 0x00)),
                 2: bytes((0x60, 0x85, 0x74, 0x05, 0x08, 0x03, 0x01))}
_KA_CURVES: dict[int, ec.EllipticCurve] = {1: ec.SECP256R1(), 2: ec.SECP384R1()}


def _sign_rs(private: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(private.sign(data, ec.ECDSA(_hash_of(private))))
    size = private.curve.key_size // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def meter_key_agreement(parameters: Any, suite: int, signing_key: ec.EllipticCurvePrivateKey,
                        client_public_key: ec.EllipticCurvePublicKey, client_title: bytes, meter_title: bytes,
                        bad_signature: bool = False) -> tuple[bytes, bytes] | None:
    """Security Setup key_agreement (method 3), the meter's side: Ephemeral Unified Model.

    ``parameters`` is gurux's parse of array of {key_id, X || Y || signature}. Only key_id 0 (the
    global unicast key). Returns (A-XDR answer, agreed key), or None to refuse (wrong signature,
    wrong sizes). The KDF is SP 800-56A's concatenation KDF written out with hashlib (one hash
    block covers the 16- or 32-byte key), not the client's ``cryptography`` ConcatKDFHash.
    """
    size = signing_key.curve.key_size // 8
    try:
        ((key_id, data),) = parameters
        data = bytes(data)
    except (TypeError, ValueError):
        return None
    if int(key_id) != 0 or len(data) != 4 * size:
        return None
    xy, signature = data[:2 * size], data[2 * size:]
    der = encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))
    try:
        client_public_key.verify(der, bytes((0,)) + xy, ec.ECDSA(_hash_of(client_public_key)))
        peer = ec.EllipticCurvePublicKey.from_encoded_point(_KA_CURVES[suite], b"\x04" + xy)
    except (InvalidSignature, ValueError):
        return None
    ephemeral = ec.generate_private_key(_KA_CURVES[suite])
    z = ephemeral.exchange(ec.ECDH(), peer)
    key = concat_kdf(suite, z, _ALGORITHM_ID[suite] + client_title + meter_title)
    n = ephemeral.public_key().public_numbers()
    own = n.x.to_bytes(size, "big") + n.y.to_bytes(size, "big")
    signed = bytes((0,)) + (bytes(len(own)) if bad_signature else own)  # fault: signed over the wrong data
    body = own + _sign_rs(signing_key, signed)
    answer = bytes((0x01, 0x01, 0x02, 0x02, 0x16, 0x00, 0x09)) + _length(len(body)) + body
    return answer, key


def concat_kdf(suite: int, z: bytes, other_info: bytes, length: int | None = None) -> bytes:
    """SP 800-56A 5.8.1: Hash(counter || Z || OtherInfo) for counter = 1, 2, ... until ``length``."""
    digest = hashlib.sha384 if suite == 2 else hashlib.sha256
    length = length or (32 if suite == 2 else 16)
    out = b""
    counter = 1
    while len(out) < length:
        out += digest(counter.to_bytes(4, "big") + z + other_info).digest()
        counter += 1
    return out[:length]


def _length(n: int) -> bytes:
    return bytes((n,)) if n < 0x80 else bytes((0x81, n))
