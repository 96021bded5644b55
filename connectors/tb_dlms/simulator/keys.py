"""Deterministic ECDSA key pairs for simulated meters and their test clients (suites 1 and 2).

Derived from a number, not random, so a test, the simulator process and a config file written
for the gateway all agree on the same keys without passing private keys between processes.
"""
from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

#: The curve of each security suite (Blue Book: suite 1 P-256, suite 2 P-384).
CURVES: dict[int, ec.EllipticCurve] = {1: ec.SECP256R1(), 2: ec.SECP384R1()}
_ORDERS = {1: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
           2: int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
                  "C7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16)}


def private_key(label: str, suite: int) -> ec.EllipticCurvePrivateKey:
    """The key pair named ``label`` on ``suite``'s curve."""
    scalar = int.from_bytes(hashlib.sha512(f"{label}/{suite}".encode()).digest(), "big") % (_ORDERS[suite] - 1) + 1
    return ec.derive_private_key(scalar, CURVES[suite])


def private_pem(label: str, suite: int) -> bytes:
    return private_key(label, suite).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption())


def public_pem(label: str, suite: int) -> bytes:
    return private_key(label, suite).public_key().public_bytes(serialization.Encoding.PEM,
                                                               serialization.PublicFormat.SubjectPublicKeyInfo)


#: Label of the key pair a test client uses unless a spec names another.
CLIENT = "tb-dlms test client"
