"""A-XDR ``Data``: the one codec of DLMS values, both ways, and GET PDUs for the steady-state poll.

gurux parses one byte at a time through ``GXByteBuffer`` method calls; for the ten registers of a
poll that costs more CPU than everything else in the session together. The common case (an
unciphered GET-Response, normal or with-list, in one frame) is simple enough to decode here with
``struct``. Anything else (ciphered, block transfer, segmented HDLC, a type we do not know) raises
``Unsupported`` and the caller hands the frame to gurux unchanged.

The encoders serve the simulator (which answers reads with pre-encoded bytes: a few struct calls
are much cheaper than gurux's generic ``setData`` for a profile of hundreds of rows) and the
selective-access parameters of profile reads. Tags, lengths and integer ranges follow IEC 62056-6-2
(Blue Book 4.1.5, "Common data types") and the A-XDR rules of IEC 61334-6.
"""
from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Sequence
from typing import Any, Final

GET_REQUEST = 0xC0
GET_RESPONSE = 0xC4
NORMAL = 0x01
WITH_LIST = 0x03


class DataType(enum.IntEnum):
    """The tag of a DLMS ``Data`` value (Blue Book table 2); names and values as gurux's ``DataType``."""

    NONE = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOLEAN = 3
    BITSTRING = 4
    INT32 = 5  # double-long
    UINT32 = 6  # double-long-unsigned
    OCTET_STRING = 9
    STRING = 10  # visible-string
    STRING_UTF8 = 12
    BCD = 13
    INT8 = 15  # integer
    INT16 = 16  # long
    UINT8 = 17  # unsigned
    UINT16 = 18  # long-unsigned
    COMPACT_ARRAY = 19
    INT64 = 20  # long64
    UINT64 = 21  # long64-unsigned
    ENUM = 22
    FLOAT32 = 23
    FLOAT64 = 24
    DATETIME = 25
    DATE = 26
    TIME = 27


#: Value range of each integer type, by its name as ``data_type_name`` gives it (bcd is one byte).
INTEGER_RANGES: Final[dict[str, tuple[int, int]]] = {
    "int8": (-2**7, 2**7 - 1), "int16": (-2**15, 2**15 - 1), "int32": (-2**31, 2**31 - 1),
    "int64": (-2**63, 2**63 - 1), "uint8": (0, 2**8 - 1), "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1), "enum": (0, 255), "bcd": (0, 255),
}

_DATA_TYPES: Final[dict[str, DataType]] = {t.name.lower(): t for t in DataType}
_ALIASES: Final[dict[str, str]] = {"bool": "boolean", "int": "int32", "uint": "uint32", "float": "float32",
                                   "double": "float64", "octets": "octet_string"}


def data_type(name: str | None) -> DataType:
    """A DLMS data type by name (``uint16``, ``octet_string``, ``bool`` ...); None is null-data."""
    if name is None:
        return DataType.NONE
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _DATA_TYPES:
        raise ValueError(f"unknown DLMS data type {name!r}; one of: {', '.join(sorted(_DATA_TYPES))}")
    return _DATA_TYPES[key]


def data_type_name(name: str) -> str:
    """The canonical name of a DLMS data type given by name or alias (``bool`` -> ``boolean``)."""
    return data_type(name).name.lower()


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


_Reader = Callable[[bytes, int], Any]

#: Types of a fixed size: tag -> (size, reader). Keys are plain ints: the tag byte is looked up here.
_FIXED: Final[dict[int, tuple[int, _Reader]]] = {int(tag): entry for tag, entry in {
    DataType.BOOLEAN: (1, lambda b, i: b[i] != 0),
    DataType.INT32: (4, lambda b, i: struct.unpack_from(">i", b, i)[0]),
    DataType.UINT32: (4, lambda b, i: struct.unpack_from(">I", b, i)[0]),
    DataType.INT8: (1, lambda b, i: struct.unpack_from(">b", b, i)[0]),
    DataType.INT16: (2, lambda b, i: struct.unpack_from(">h", b, i)[0]),
    DataType.UINT8: (1, lambda b, i: b[i]),
    DataType.UINT16: (2, lambda b, i: struct.unpack_from(">H", b, i)[0]),
    DataType.INT64: (8, lambda b, i: struct.unpack_from(">q", b, i)[0]),
    DataType.UINT64: (8, lambda b, i: struct.unpack_from(">Q", b, i)[0]),
    DataType.ENUM: (1, lambda b, i: b[i]),
    DataType.FLOAT32: (4, lambda b, i: struct.unpack_from(">f", b, i)[0]),
    DataType.FLOAT64: (8, lambda b, i: struct.unpack_from(">d", b, i)[0]),
    DataType.DATETIME: (12, lambda b, i: bytes(b[i:i + 12])),
    DataType.DATE: (5, lambda b, i: bytes(b[i:i + 5])),
    DataType.TIME: (4, lambda b, i: bytes(b[i:i + 4])),
}.items()}
#: String types: tag -> (name for errors, text encoding; None keeps the bytes).
_STRINGS: Final[dict[int, tuple[str, str | None]]] = {
    int(DataType.OCTET_STRING): ("octet string", None),
    int(DataType.STRING): ("visible string", "ascii"),
    int(DataType.STRING_UTF8): ("UTF-8 string", "utf-8"),
}
_NULL: Final = int(DataType.NONE)
_ARRAY: Final = int(DataType.ARRAY)
_STRUCTURE: Final = int(DataType.STRUCTURE)
_BITSTRING: Final = int(DataType.BITSTRING)


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


def decode_length(b: bytes, i: int) -> tuple[int, int]:
    """An A-XDR length at offset i: (length, offset after it). Raises Malformed."""
    return _length(b, i)


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
    if tag == _NULL:
        return None, i
    string = _STRINGS.get(tag)
    if string is not None:
        n, i = _length(b, i)
        if i + n > len(b):
            raise Malformed(f"{string[0]} claims {n} bytes, reply holds {len(b) - i}")
        raw = bytes(b[i:i + n])
        encoding = string[1]
        return (raw if encoding is None else raw.decode(encoding, "replace")), i + n
    if tag == _ARRAY or tag == _STRUCTURE:
        n, i = _length(b, i)
        if n > len(b) - i:  # every element takes at least its tag byte
            raise Malformed(f"{'array' if tag == _ARRAY else 'structure'} claims {n} elements, "
                            f"reply holds {len(b) - i} bytes")
        items = []
        for _ in range(n):
            v, i = decode_data(b, i)
            items.append(v)
        return items, i
    if tag == _BITSTRING:
        bits, i = _length(b, i)
        nbytes = (bits + 7) // 8
        if i + nbytes > len(b):
            raise Malformed(f"bit string claims {bits} bits, reply holds {len(b) - i} bytes")
        value = "".join(f"{x:08b}" for x in b[i:i + nbytes])[:bits]
        return value, i + nbytes
    raise Unsupported(f"type {tag}")


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
    if kind == WITH_LIST:
        return invoke, parse_list_result(apdu, 3)
    if kind == NORMAL:
        try:
            return invoke, [_result(apdu, 3)[0]]
        except IndexError:
            raise Malformed("reply ends inside a value") from None
    raise Unsupported("block transfer")


def parse_list_result(b: bytes, i: int = 0) -> list[Any]:
    """The result of a GET-with-list: a count, then one Get-Data-Result each (``00`` and the data,
    or ``01`` and a data-access-result); an ``AccessResult`` stands for each failed one.

    In one PDU this follows the invoke id; in a Get-Response-With-Datablock it is the raw data of
    all blocks put together (IEC 62056-5-3). Malformed carries the index of the result it ends in.
    """
    count, i = _length(b, i)
    if count > len(b) - i:  # every result takes at least its choice byte
        raise Malformed(f"reply claims {count} results, holds {len(b) - i} bytes")
    values = []
    for pos in range(count):
        try:
            v, i = _result(b, i)
        except IndexError:
            raise Malformed(f"reply ends inside result {pos}", pos) from None
        except Malformed as exc:
            raise Malformed(str(exc), pos) from None
        values.append(v)
    return values


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


# ---- encoding ---------------------------------------------------------------------------------

_INTEGER_FORMATS: Final[dict[DataType, struct.Struct]] = {
    DataType.INT8: struct.Struct(">b"), DataType.INT16: struct.Struct(">h"), DataType.INT32: struct.Struct(">i"),
    DataType.INT64: struct.Struct(">q"), DataType.UINT8: struct.Struct(">B"), DataType.UINT16: struct.Struct(">H"),
    DataType.UINT32: struct.Struct(">I"), DataType.UINT64: struct.Struct(">Q"), DataType.ENUM: struct.Struct(">B"),
}


def encode_length(n: int) -> bytes:
    """An A-XDR length: one byte below 128, else 0x80 + the number of length bytes, then the length."""
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    if n < 0x10000:
        return b"\x82" + n.to_bytes(2, "big")
    return b"\x84" + n.to_bytes(4, "big")


#: null-data: a value left out (a compact profile's clock after its first row).
NULL_DATA: Final = bytes((DataType.NONE,))


def integer(tag: DataType, value: int) -> bytes:
    """An integer or enum value of type ``tag`` (struct.error when it does not fit)."""
    return bytes((tag,)) + _INTEGER_FORMATS[tag].pack(value)


def boolean(value: bool) -> bytes:
    return bytes((DataType.BOOLEAN, 1 if value else 0))


def octets(value: bytes) -> bytes:
    """An octet-string (logical names, date-times, serial numbers as bytes)."""
    return bytes((DataType.OCTET_STRING,)) + encode_length(len(value)) + value


def structure(*items: bytes) -> bytes:
    """A structure of already encoded values."""
    return bytes((DataType.STRUCTURE,)) + encode_length(len(items)) + b"".join(items)


def array(items: Sequence[bytes]) -> bytes:
    """An array of already encoded values (of one type, which A-XDR does not check)."""
    return bytes((DataType.ARRAY,)) + encode_length(len(items)) + b"".join(items)
