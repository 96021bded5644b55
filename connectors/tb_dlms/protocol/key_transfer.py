"""Global key change through the Security Setup object (Blue Book 4.4.7, class 64).

``global_key_transfer`` (method 2) takes an array of ``{key_id, key_wrapped}``, each new key
wrapped with the master key (KEK) by AES key wrap (RFC 3394). The meter takes the new keys into
use after its reply, so the association that sent them is the last one with the old keys.
"""
from __future__ import annotations

import enum

from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from .obis import ObisCode

SECURITY_SETUP_CLASS = 64
GLOBAL_KEY_TRANSFER = 2
#: The Security Setup of the management association; meters have one per association (0.0.43.0.x.255).
DEFAULT_SECURITY_SETUP = ObisCode(0, 0, 43, 0, 0, 255)


class KeyId(enum.IntEnum):
    """key_id of global_key_transfer."""

    GLOBAL_UNICAST_ENCRYPTION = 0  # the block cipher key
    GLOBAL_BROADCAST_ENCRYPTION = 1
    AUTHENTICATION = 2
    MASTER = 3  # the KEK itself


def wrap(master_key: bytes, key: bytes) -> bytes:
    """RFC 3394 AES key wrap of ``key`` with the KEK ``master_key``."""
    return aes_key_wrap(bytes(master_key), bytes(key))


def transfer_parameter(master_key: bytes, keys: dict[KeyId, bytes]) -> bytes:
    """A-XDR of the method parameter: array of structure {enum key_id, octet-string wrapped}."""
    out = bytearray((0x01, len(keys)))
    for key_id, key in keys.items():
        wrapped = wrap(master_key, key)
        out += bytes((0x02, 0x02, 0x16, int(key_id), 0x09, len(wrapped))) + wrapped
    return bytes(out)
