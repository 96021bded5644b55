"""DLMS push: DataNotification APDUs, plain or ciphered (general-glo-ciphering, security suite 0).

Decoded with our own A-XDR and the C-backed AES-GCM, not gurux: a fleet of 2000 meters pushing
every 15 s is 133 notifications a second on the one polling thread, and gurux's pure-Python GCM
costs 15x a plain decode (protocol/fast_gcm.py). The keys of a ciphered push are found by the
sender's system title, which general-glo-ciphering carries in clear in front of the ciphertext.

Pure functions, no I/O: used by the connector's listeners and by the simulator's tests.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, Callable

from cryptography.exceptions import InvalidTag

from . import axdr, cosem_datetime, fast_gcm

DATA_NOTIFICATION = 0x0F
GENERAL_GLO_CIPHERING = 0xDB
#: Security control byte of suite 0 with authentication and encryption (the only one accepted).
SC_AUTH_ENC = 0x30
_TAG = 12
#: LLC header of a DLMS APDU in an HDLC information field (server to client).
LLC_REPLY = b"\xe6\xe7\x00"

#: Keys (block cipher key, authentication key) of a sender by its system title; None: unknown.
KeyLookup = Callable[[bytes], "tuple[bytes, bytes] | None"]
_UTC = _dt.timezone.utc


class PushError(Exception):
    """A push that does not decode; ``reason`` is short and fixed per kind (logged once per meter)."""

    def __init__(self, reason: str, detail: str = "", system_title: bytes | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.system_title = system_title


@dataclass(frozen=True, slots=True)
class Notification:
    """One decoded DataNotification: the pushed values in push order and the meter's own time."""

    invoke_id: int
    values: tuple[Any, ...]
    #: The notification's date-time as Unix ms (deviation applied); None when absent or unspecified.
    timestamp_ms: int | None
    #: The sender's system title (ciphered pushes); None for a plain push.
    system_title: bytes | None = None
    ciphered: bool = False


def is_push(apdu: bytes) -> bool:
    return bool(apdu) and apdu[0] in (DATA_NOTIFICATION, GENERAL_GLO_CIPHERING)


def sender_title(apdu: bytes) -> bytes | None:
    """The system title in front of a general-glo-ciphering APDU, without decrypting it."""
    if len(apdu) < 10 or apdu[0] != GENERAL_GLO_CIPHERING or apdu[1] != 8:
        return None
    return bytes(apdu[2:10])


def hdlc_apdu(info: bytes) -> bytes:
    """The APDU of an HDLC information field (LLC header dropped when present)."""
    return info[3:] if info[:3] == LLC_REPLY else info


def decode(apdu: bytes, keys: KeyLookup | None = None, deviation_utc_minus_local: bool = True) -> Notification:
    """A DataNotification; raises PushError with the reason (unknown sender, wrong key, malformed)."""
    if not apdu:
        raise PushError("empty APDU")
    if apdu[0] == GENERAL_GLO_CIPHERING:
        title, plain = _open(apdu, keys)
        note = _decode_plain(plain, deviation_utc_minus_local)
        return Notification(note.invoke_id, note.values, note.timestamp_ms, title, True)
    return _decode_plain(apdu, deviation_utc_minus_local)


def _open(apdu: bytes, keys: KeyLookup | None) -> tuple[bytes, bytes]:
    title = sender_title(apdu)
    if title is None:
        raise PushError("malformed ciphered APDU", "no 8-byte system title")
    try:
        length, i = axdr.decode_length(apdu, 10)
    except axdr.Malformed as exc:
        raise PushError("malformed ciphered APDU", str(exc), title) from None
    body = apdu[i:i + length]
    if len(body) != length or length < 5 + _TAG:
        raise PushError("malformed ciphered APDU", f"claims {length} bytes, holds {len(body)}", title)
    if body[0] != SC_AUTH_ENC:
        raise PushError("unsupported security", f"security control {body[0]:#04x} (suite 0 with "
                        "authentication and encryption, 0x30, is supported)", title)
    found = keys(title) if keys is not None else None
    if found is None:
        raise PushError("unknown sender", f"no meter configured with system title {title.hex()}", title)
    ek, ak = found
    try:
        plain = fast_gcm.open_sealed(bytes(ek), title + body[1:5], body[:1] + bytes(ak), body[5:-_TAG], body[-_TAG:])
    except InvalidTag:
        raise PushError("wrong key", "authentication tag does not match (block cipher or authentication key)",
                        title) from None
    return title, plain


def _decode_plain(apdu: bytes, deviation_utc_minus_local: bool) -> Notification:
    if apdu[0] != DATA_NOTIFICATION:
        raise PushError("not a DataNotification", f"APDU tag {apdu[0]:#04x}")
    if len(apdu) < 6:
        raise PushError("malformed DataNotification", "shorter than its header")
    invoke = int.from_bytes(apdu[1:5], "big")
    n = apdu[5]
    i = 6 + n
    if i > len(apdu):
        raise PushError("malformed DataNotification", f"date-time claims {n} bytes")
    ts = _timestamp_ms(apdu[6:i], deviation_utc_minus_local) if n == cosem_datetime.LENGTH else None
    try:
        value, end = axdr.decode_data(apdu, i)
    except (axdr.Malformed, axdr.Unsupported, IndexError) as exc:
        raise PushError("malformed DataNotification", f"notification body: {exc or 'truncated'}") from None
    if end != len(apdu):
        raise PushError("malformed DataNotification", f"{len(apdu) - end} byte(s) after the notification body")
    values: tuple[Any, ...] = tuple(value) if isinstance(value, list) else (value,)
    return Notification(invoke, values, ts)


def _timestamp_ms(raw: bytes, utc_minus_local: bool) -> int | None:
    """The notification's date-time as Unix ms; None without a date or a deviation (no instant:
    the receive time stands in, as a meter's local time without its offset would be a guess)."""
    value = cosem_datetime.decode(raw)
    if value is None:
        return None
    offset = value.utc_offset_min(utc_minus_local)
    if offset is None or value.status == cosem_datetime.STATUS_NOT_SPECIFIED:
        return None
    return int(value.local.replace(tzinfo=_UTC).timestamp() * 1000) - offset * 60_000


# -- encoding (the simulator, tests) ------------------------------------------------------------


def encode(values_axdr: bytes, invoke_id: int, when: bytes | None) -> bytes:
    """A plain DataNotification around an already encoded body (a structure of the pushed values)."""
    stamp = bytes([len(when)]) + when if when else b"\x00"
    return bytes([DATA_NOTIFICATION]) + invoke_id.to_bytes(4, "big") + stamp + values_axdr


def seal(apdu: bytes, system_title: bytes, invocation_counter: int, ek: bytes, ak: bytes) -> bytes:
    """general-glo-ciphering of ``apdu`` (suite 0, authenticated and encrypted)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    ic = invocation_counter.to_bytes(4, "big")
    enc = Cipher(algorithms.AES(bytes(ek)), modes.GCM(system_title + ic)).encryptor()
    enc.authenticate_additional_data(bytes([SC_AUTH_ENC]) + bytes(ak))
    ct = enc.update(apdu) + enc.finalize()
    body = bytes([SC_AUTH_ENC]) + ic + ct + enc.tag[:_TAG]
    return bytes([GENERAL_GLO_CIPHERING, 8]) + system_title + axdr.encode_length(len(body)) + body
