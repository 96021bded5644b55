"""Workarounds for defects of gurux-dlms 1.0.203's *client* security code, each named.

Found against an independent server; each has a test that fails without it
(tests/protocol/test_security.py) and one that shows the defect is still in gurux, so a gurux
upgrade that fixes it makes that test fail and the workaround can go.

W1 ``ecdsa_p384``: ``GXEcdsa.sign``/``verify`` pick the hash with ``elif scheme == Ecc.P256``
   twice, so a P-384 key (security suite 2) always raises "Invalid private key scheme".
W2 ``ecdsa_bad_signature``: ``GXDLMSClient.parseApplicationAssociationResponse`` formats its
   "Invalid StoC" message with a variable that the HLS-ECDSA branch never sets: a meter's wrong
   signature raises ``UnboundLocalError`` instead of an authentication error.
   W1 and W2 are both worked around by doing HLS-ECDSA passes 3 and 4 here, with the
   ``cryptography`` package (``ecdsa_proof`` and ``verify_meter_proof``), never through gurux.
   That also keeps gurux's ``print("Private signed key: ...")`` of the pass-3 path from running.
W3 ``decrypt_attribute_error``: ``GXDLMSChippering.decryptAesGcm`` calls ``AesGcmParameter``
   setters that do not exist (``setSystemTitle``, ``setInvocationCounter`` ...) on the
   general-ciphering path, so a reply it cannot decipher raises ``AttributeError``;
   ``is_decrypt_defect`` recognises it so the session reports a ciphering failure.
"""
from __future__ import annotations

import traceback

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509 import load_pem_x509_certificate

#: The gurux release these workarounds were written for.
GURUX_VERSION = "1.0.203"
WORKAROUNDS = ("ecdsa_p384", "ecdsa_bad_signature", "decrypt_attribute_error")
#: The curve each security suite signs with.
SUITE_CURVES = {1: 256, 2: 384}


def load_private_key(pem: bytes, suite: int) -> ec.EllipticCurvePrivateKey:
    """The client's signing key from PEM; ValueError (without key material) when unusable."""
    try:
        key = serialization.load_pem_private_key(bytes(pem), password=None)
    except Exception as exc:  # noqa: BLE001 - cryptography raises several kinds; the text names no key bytes
        raise ValueError(f"not a PEM private key ({type(exc).__name__})") from None
    _check_curve(key, suite, "signing key")
    return key  # type: ignore[return-value]


def load_public_key(pem: bytes, suite: int) -> ec.EllipticCurvePublicKey:
    """The meter's public key from a PEM public key or certificate."""
    data = bytes(pem)
    key: object
    try:
        if b"CERTIFICATE" in data:
            key = load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"not a PEM public key or certificate ({type(exc).__name__})") from None
    _check_curve(key, suite, "meter public key")
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("meter public key is not a public key")
    return key


def _check_curve(key: object, suite: int, what: str) -> None:
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        raise ValueError(f"{what} is not an elliptic-curve key")
    want = SUITE_CURVES.get(suite)
    if want is None or key.curve.key_size != want:
        raise ValueError(f"{what} is on a {key.curve.key_size}-bit curve; security suite {suite} needs "
                         f"P-{want}" if want else f"HLS-ECDSA needs security suite 1 or 2, not {suite}")


def _hash(size: int) -> hashes.HashAlgorithm:
    return hashes.SHA384() if size == 384 else hashes.SHA256()


def ecdsa_proof(key: ec.EllipticCurvePrivateKey, client_title: bytes, meter_title: bytes, stoc: bytes,
                ctos: bytes) -> bytes:
    """W1: pass 3, f(StoC) = our signature (r || s) over client title, meter title, StoC, CtoS."""
    der = key.sign(client_title + meter_title + stoc + ctos, ec.ECDSA(_hash(key.curve.key_size)))
    r, s = decode_dss_signature(der)
    size = key.curve.key_size // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def verify_meter_proof(key: ec.EllipticCurvePublicKey, signature: bytes, client_title: bytes, meter_title: bytes,
                       stoc: bytes, ctos: bytes) -> bool:
    """W2: pass 4, the meter's signature over meter title, client title, CtoS, StoC; False if wrong."""
    size = key.curve.key_size // 8
    if len(signature) != 2 * size:
        return False
    der = encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))
    try:
        key.verify(der, meter_title + client_title + ctos + stoc, ec.ECDSA(_hash(key.curve.key_size)))
    except InvalidSignature:
        return False
    return True


def is_decrypt_defect(exc: BaseException) -> bool:
    """W3: an AttributeError raised inside gurux's AES-GCM decrypt (not some other bug of ours)."""
    if not isinstance(exc, AttributeError):
        return False
    return any(frame.filename.endswith("GXDLMSChippering.py") and frame.name == "decryptAesGcm"
               for frame in traceback.extract_tb(exc.__traceback__))
