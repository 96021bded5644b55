"""Key agreement through the Security Setup object (class 64, method 3 ``key_agreement``), sans-IO.

Security suites 1 and 2 agree symmetric keys with the Ephemeral Unified Model scheme
C(2e, 0s, ECC CDH) of NIST SP 800-56A: each side makes a fresh (ephemeral) key pair on the suite's
curve, signs ``key_id || X || Y`` of its ephemeral public key with its static ECDSA signing key,
and both compute Z = ECDH(own ephemeral private key, peer's ephemeral public key). The key comes
from the concatenation KDF (SP 800-56A 5.8.1): SHA-256 (suite 1) / SHA-384 (suite 2) over
``00000001 || Z || OtherInfo``, OtherInfo = AlgorithmID || client system title (party U, the
initiator) || server system title (party V), AlgorithmID the encoded OID 2.16.756.5.8.3.x of the
algorithm the key is for (x = 0 AES-GCM-128, 1 AES-GCM-256): DLMS UA 1000-2 (Green Book), the
key agreement schemes; the same layout is in Gurux's .NET ``GXSecure.GenerateKDF``.

The method parameter is ``array of structure {enum key_id, octet-string key_agreement_data}``,
key_agreement_data = X || Y || signature (r || s); the meter answers the same structure with its
own ephemeral public key signed with its signing key (which ``security.meterPublicKey`` holds).

Why this module exists: gurux-dlms 1.0.203 cannot do it on either side (the client's
``keyAgreement`` builds its key data with a helper that returns None; the server's method 3 sets
``e.rror``, a typo, and answers success with no keys). Nothing here logs or returns key material
except the derived key, which the caller keeps in memory only.
"""
from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

from . import axdr
from .key_transfer import KeyId
from .settings import KeyAgreement

KEY_AGREEMENT = 3
#: Encoded OID 2.16.756.5.8.3 (DLMS UA cryptographic algorithm ids) and the id of the key's algorithm.
_ALGORITHM_OID = bytes.fromhex("608574050803")
ALGORITHM_IDS = {1: _ALGORITHM_OID + b"\x00", 2: _ALGORITHM_OID + b"\x01"}  # AES-GCM-128, AES-GCM-256
_CURVES: dict[int, ec.EllipticCurve] = {1: ec.SECP256R1(), 2: ec.SECP384R1()}


class KeyAgreementError(ValueError):
    """A reply that is not a key agreement answer, or one whose signature does not verify."""


def _hash(suite: int) -> hashes.HashAlgorithm:
    return hashes.SHA384() if suite == 2 else hashes.SHA256()


def _size(suite: int) -> int:
    """Bytes of one coordinate (and of r and s): 32 on P-256, 48 on P-384."""
    return 48 if suite == 2 else 32


def key_size(suite: int) -> int:
    return 32 if suite == 2 else 16


def other_info(suite: int, client_title: bytes, server_title: bytes) -> bytes:
    return ALGORITHM_IDS[suite] + bytes(client_title) + bytes(server_title)


def kdf(suite: int, z: bytes, otherinfo: bytes, length: int | None = None) -> bytes:
    """SP 800-56A concatenation KDF with the suite's hash; ``length`` defaults to the suite's key."""
    return ConcatKDFHash(_hash(suite), length or key_size(suite), otherinfo).derive(bytes(z))


def new_ephemeral(suite: int) -> ec.EllipticCurvePrivateKey:
    if suite not in _CURVES:
        raise ValueError(f"key agreement needs security suite 1 or 2, not {suite}")
    return ec.generate_private_key(_CURVES[suite])


def public_xy(key: ec.EllipticCurvePublicKey) -> bytes:
    """X || Y, each the curve's size: the uncompressed point without its 04 prefix."""
    n = key.public_numbers()
    size = (key.curve.key_size + 7) // 8
    return n.x.to_bytes(size, "big") + n.y.to_bytes(size, "big")


def public_key_from_xy(suite: int, xy: bytes) -> ec.EllipticCurvePublicKey:
    """The peer's ephemeral public key; KeyAgreementError when it is not a point of the curve."""
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[suite], b"\x04" + bytes(xy))
    except (ValueError, KeyError):
        raise KeyAgreementError("the ephemeral public key is not a point of the suite's curve") from None


def sign(signing_key: ec.EllipticCurvePrivateKey, key_id: int, xy: bytes) -> bytes:
    """ECDSA over key_id || X || Y with the signing key, as r || s."""
    der = signing_key.sign(bytes((key_id,)) + xy, ec.ECDSA(_hash(2 if signing_key.curve.key_size == 384 else 1)))
    r, s = decode_dss_signature(der)
    size = (signing_key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def verify(public_key: ec.EllipticCurvePublicKey, key_id: int, xy: bytes, signature: bytes) -> bool:
    size = (public_key.curve.key_size + 7) // 8
    if len(signature) != 2 * size:
        return False
    der = encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))
    try:
        public_key.verify(der, bytes((key_id,)) + xy,
                          ec.ECDSA(_hash(2 if public_key.curve.key_size == 384 else 1)))
    except InvalidSignature:
        return False
    return True


def encode(items: list[tuple[int, bytes]]) -> bytes:
    """A-XDR of the method parameter (or of the meter's answer): array of {enum, octet-string}."""
    return axdr.array([axdr.structure(axdr.integer(axdr.DataType.ENUM, key_id), axdr.octets(data))
                       for key_id, data in items])


def decode(value: object, suite: int) -> list[tuple[int, bytes, bytes]]:
    """(key_id, X || Y, signature) of each entry, from A-XDR bytes or the value gurux parsed."""
    if isinstance(value, (bytes, bytearray)):
        try:
            value, _ = axdr.decode_data(bytes(value), 0)
        except (axdr.Malformed, axdr.Unsupported, IndexError) as exc:
            raise KeyAgreementError(f"the answer does not decode ({exc})") from None
    size = _size(suite)
    out = []
    if not isinstance(value, list) or not value:
        raise KeyAgreementError("the answer is not an array of {key_id, key_agreement_data}")
    for item in value:
        if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], int)
                or not isinstance(item[1], (bytes, bytearray)) or len(item[1]) != 4 * size):
            raise KeyAgreementError(f"an entry is not {{key_id, {4 * size}-byte key_agreement_data}}")
        data = bytes(item[1])
        out.append((int(item[0]), data[:2 * size], data[2 * size:]))
    return out


@dataclass
class Initiation:
    """The client's side of one agreement: its ephemeral key (never leaves the process)."""

    suite: int
    key_id: int
    ephemeral: ec.EllipticCurvePrivateKey

    def request(self, signing_key: ec.EllipticCurvePrivateKey) -> bytes:
        """The method-3 parameter: our ephemeral public key, signed."""
        xy = public_xy(self.ephemeral.public_key())
        return encode([(self.key_id, xy + sign(signing_key, self.key_id, xy))])

    def complete(self, answer: object, meter_public_key: ec.EllipticCurvePublicKey, client_title: bytes,
                 server_title: bytes) -> bytes:
        """The agreed key from the meter's answer; KeyAgreementError if it is not signed by the meter."""
        entries = decode(answer, self.suite)
        if len(entries) != 1 or entries[0][0] != self.key_id:
            raise KeyAgreementError(f"the meter answered for key ids {[e[0] for e in entries]}, "
                                    f"we asked for {self.key_id}")
        _, xy, signature = entries[0]
        if not verify(meter_public_key, self.key_id, xy, signature):
            raise KeyAgreementError("the meter's signature on its ephemeral key does not verify")
        z = self.ephemeral.exchange(ec.ECDH(), public_key_from_xy(self.suite, xy))
        return kdf(self.suite, z, other_info(self.suite, client_title, server_title))


#: The key_id each mode agrees (the standard's key ids, as in global_key_transfer).
KEY_IDS = {KeyAgreement.GLOBAL_UNICAST: KeyId.GLOBAL_UNICAST_ENCRYPTION}


def initiate(suite: int, mode: KeyAgreement = KeyAgreement.GLOBAL_UNICAST) -> Initiation:
    return Initiation(suite, int(KEY_IDS[mode]), new_ephemeral(suite))
