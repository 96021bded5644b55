"""Minimal A-XDR encoder for the values the simulator computes per request.

Reads are answered with pre-encoded bytes (gurux's ``byteArray`` path) because the shared gurux
objects hold no per-meter values; a few struct calls are also much cheaper than gurux's
generic ``setData`` when a profile with hundreds of rows is encoded.
"""
from __future__ import annotations

import struct

ARRAY, STRUCTURE, BOOLEAN = 0x01, 0x02, 0x03
INT32, UINT32, OCTET_STRING = 0x05, 0x06, 0x09
INT8, INT16, UINT8, UINT16, ENUM = 0x0F, 0x10, 0x11, 0x12, 0x16
UINT64 = 0x15
#: null-data: a value left out (a compact profile's clock after the first row).
NULL = b"\x00"

_FORMATS = {INT32: ">i", UINT32: ">I", INT8: ">b", INT16: ">h", UINT8: ">B", UINT16: ">H",
            ENUM: ">B", UINT64: ">Q"}


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    if n < 0x10000:
        return b"\x82" + n.to_bytes(2, "big")
    return b"\x84" + n.to_bytes(4, "big")


def integer(tag: int, value: int) -> bytes:
    return bytes((tag,)) + struct.pack(_FORMATS[tag], value)


def boolean(value: bool) -> bytes:
    return bytes((BOOLEAN, 1 if value else 0))


def octets(value: bytes) -> bytes:
    return bytes((OCTET_STRING,)) + length(len(value)) + value


def structure(*items: bytes) -> bytes:
    return bytes((STRUCTURE,)) + length(len(items)) + b"".join(items)


def array(items: list[bytes]) -> bytes:
    return bytes((ARRAY,)) + length(len(items)) + b"".join(items)


def scaler_unit(scaler: int, unit: int) -> bytes:
    return structure(integer(INT8, scaler), integer(ENUM, unit))
