"""A-XDR data decoding and GET PDUs for the steady-state poll, without gurux's byte buffers.

gurux parses one byte at a time through ``GXByteBuffer`` method calls; for the ten registers of a
poll that costs more CPU than everything else in the session together. The common case (an
unciphered GET-Response, normal or with-list, in one frame) is simple enough to decode here with
``struct``. Anything else (ciphered, block transfer, segmented HDLC, a type we do not know) raises
``Unsupported`` and the caller hands the frame to gurux unchanged.
"""
from __future__ import annotations

import struct
from typing import Any, Callable

GET_REQUEST = 0xC0
GET_RESPONSE = 0xC4
NORMAL = 0x01
WITH_LIST = 0x03


class Unsupported(Exception):
    """Not for the fast path: let gurux handle it."""


class Malformed(Exception):
    """Bytes that are not A-XDR: a length or count claiming more than the reply holds.

    gurux takes such data as a value (a short octet string becomes "no value", an array claiming
    2^31 elements with one present becomes ``[1]``), so it is caught here, never handed on.
    ``index`` is the position of the offending value in a with-list reply (0 otherwise).
    """

    def __init__(self, message: str, index: int = 0) -> None:
        super().__init__(message)
        self.index = index


#: data-access-result names (Blue Book), for errors a user can act on.
ACCESS_RESULTS = {
    0: "success", 1: "hardware-fault", 2: "temporary-failure", 3: "read-write-denied",
    4: "object-undefined", 9: "object-class-inconsistent", 11: "object-unavailable",
    12: "type-unmatched", 13: "scope-of-access-violated", 14: "data-block-unavailable",
    15: "long-get-aborted", 16: "no-long-get-in-progress", 17: "long-set-aborted",
    18: "no-long-set-in-progress", 19: "data-block-number-invalid", 250: "other-reason",
}


class AccessResult:
    """A failed attribute inside a GET response (its data-access-result)."""

    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        self.code = code

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AccessResult) and other.code == self.code

    def __hash__(self) -> int:
        return hash(self.code)

    def __repr__(self) -> str:
        return f"AccessResult({self.code})"

    @property
    def name(self) -> str:
        return ACCESS_RESULTS.get(self.code, f"data-access-result {self.code}")


#: Fixed-size A-XDR types by tag: (size in bytes, decoder of the value at offset i).
_FIXED: dict[int, tuple[int, Callable[[bytes, int], Any]]] = {
    3: (1, lambda b, i: b[i] != 0),
    5: (4, lambda b, i: struct.unpack_from(">i", b, i)[0]),
    6: (4, lambda b, i: struct.unpack_from(">I", b, i)[0]),
    15: (1, lambda b, i: struct.unpack_from(">b", b, i)[0]),
    16: (2, lambda b, i: struct.unpack_from(">h", b, i)[0]),
    17: (1, lambda b, i: b[i]),
    18: (2, lambda b, i: struct.unpack_from(">H", b, i)[0]),
    20: (8, lambda b, i: struct.unpack_from(">q", b, i)[0]),
    21: (8, lambda b, i: struct.unpack_from(">Q", b, i)[0]),
    22: (1, lambda b, i: b[i]),
    23: (4, lambda b, i: struct.unpack_from(">f", b, i)[0]),
    24: (8, lambda b, i: struct.unpack_from(">d", b, i)[0]),
    25: (12, lambda b, i: bytes(b[i:i + 12])),
    26: (5, lambda b, i: bytes(b[i:i + 5])),
    27: (4, lambda b, i: bytes(b[i:i + 4])),
}


def _length(b: bytes, i: int) -> tuple[int, int]:
    n = b[i]
    if n < 0x80:
        return n, i + 1
    size = n & 0x7F
    if size == 0 or size > 4:
        raise Malformed(f"invalid length byte {n:#04x}")
    if i + 1 + size > len(b):
        raise Malformed("reply ends inside a length field")
    return int.from_bytes(b[i + 1:i + 1 + size], "big"), i + 1 + size


def decode_data(b: bytes, i: int) -> tuple[Any, int]:
    """One A-XDR ``Data`` value at offset i: (value, next offset)."""
    tag = b[i]
    i += 1
    fixed = _FIXED.get(tag)
    if fixed is not None:
        size, read = fixed
        if i + size > len(b):
            raise Malformed(f"data type {tag} needs {size} bytes, reply holds {len(b) - i}")
        return read(b, i), i + size
    if tag == 0:
        return None, i
    if tag in (9, 10, 12):
        n, i = _length(b, i)
        if i + n > len(b):
            raise Malformed(f"{_STRING_NAMES[tag]} claims {n} bytes, reply holds {len(b) - i}")
        raw = bytes(b[i:i + n])
        return (raw if tag == 9 else raw.decode("ascii" if tag == 10 else "utf-8", "replace")), i + n
    if tag in (1, 2):
        n, i = _length(b, i)
        if n > len(b) - i:  # every element takes at least its tag byte
            raise Malformed(f"{'array' if tag == 1 else 'structure'} claims {n} elements, "
                            f"reply holds {len(b) - i} bytes")
        items = []
        for _ in range(n):
            v, i = decode_data(b, i)
            items.append(v)
        return items, i
    if tag == 4:
        bits, i = _length(b, i)
        nbytes = (bits + 7) // 8
        if i + nbytes > len(b):
            raise Malformed(f"bit string claims {bits} bits, reply holds {len(b) - i} bytes")
        value = "".join(f"{x:08b}" for x in b[i:i + nbytes])[:bits]
        return value, i + nbytes
    raise Unsupported(f"type {tag}")


_STRING_NAMES = {9: "octet string", 10: "visible string", 12: "UTF-8 string"}


def check_value(b: bytes) -> None:
    """Raise Malformed unless ``b`` (a whole reply as gurux assembled it) decodes as A-XDR.

    Used on replies gurux parsed (HDLC, block transfers): its parser does not tell truncated
    data from a value. ``b`` is either a whole GET-Response or the data of one attribute.
    A type this decoder does not know leaves the rest unchecked (Unsupported is swallowed).
    """
    try:
        if b[:1] == bytes((GET_RESPONSE,)):
            parse_get_response(b)
        elif b:
            decode_data(b, 0)
    except Unsupported:
        pass


def incomplete_result(data: bytes) -> int | None:
    """Which result of a with-list reply the bytes received so far end inside (None: unknown).

    A block transfer carries the list (count, then results) in its raw data; the attribute
    whose value runs past the data is the one that made the reply too large.
    """
    try:
        count, i = _length(data, 0)
        for pos in range(count):
            try:
                i = _result(data, i)[1]
            except (Malformed, IndexError):
                return pos
    except (Malformed, Unsupported, IndexError):
        return None
    return None


def parse_get_response(apdu: bytes) -> tuple[int, list[Any]]:
    """(invoke-id byte, values) of a plain GET-Response-Normal or -With-List in one PDU."""
    if len(apdu) < 4 or apdu[0] != GET_RESPONSE:
        raise Unsupported("not a get-response")
    kind, invoke = apdu[1], apdu[2]
    pos = 0
    try:
        if kind == NORMAL:
            return invoke, [_result(apdu, 3)[0]]
        if kind == WITH_LIST:
            count, i = _length(apdu, 3)
            if count > len(apdu) - i:
                raise Malformed(f"reply claims {count} results, holds {len(apdu) - i} bytes")
            values = []
            for _ in range(count):
                v, i = _result(apdu, i)
                values.append(v)
            return invoke, values
    except IndexError:
        raise Malformed("reply ends inside a value", pos) from None
    except Malformed as exc:
        raise Malformed(str(exc), pos) from None
    raise Unsupported("block transfer")


def _result(b: bytes, i: int) -> tuple[Any, int]:
    if b[i] == 0:
        return decode_data(b, i + 1)
    if i + 1 < len(b):
        return AccessResult(b[i + 1]), i + 2
    return AccessResult(250), i + 1


def get_with_list_pdu(items: list[tuple[int, bytes, int]], invoke_id_and_priority: int) -> bytes:
    """GET-Request-With-List: [(class id, 6-byte logical name, attribute index)], no selectors."""
    body = bytearray((GET_REQUEST, WITH_LIST, invoke_id_and_priority, len(items)))
    for class_id, ln, attribute in items:
        body += struct.pack(">H", class_id) + ln + bytes((attribute, 0))
    return bytes(body)
