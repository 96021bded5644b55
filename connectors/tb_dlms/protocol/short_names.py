"""Short-name (SN) referencing: the names an older meter gives its attributes, and its READ PDUs.

An SN meter has no GET/SET/ACTION: a request names each attribute by a 16-bit short name. The
configuration keeps OBIS codes (as for LN); the names come from the association SN's object list
(0.0.40.0.0.255, class 12, attribute 2: base name, class id, version, logical name per object),
read once per association. Within an object (Blue Book, IEC 62056-6-2):

- attribute n is ``base + 8 (n - 1)`` (attribute 1, the logical name, is the base name itself);
- method m is ``base + first_method_offset + 8 (m - 1)``, the offset fixed per class.

``ReadRequest`` (0x05) is a SEQUENCE OF variable-access-specification; ``ReadResponse`` (0x0C)
a SEQUENCE OF CHOICE {data [0], data-access-error [1], data-block-result [2], block-number [3]}.
A response in data blocks carries that same SEQUENCE OF CHOICE, encoded, in its raw data.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Sequence

from gurux_dlms import GXByteBuffer
from gurux_dlms.internal._GXCommon import _GXCommon
from gurux_dlms.internal._GXDataInfo import _GXDataInfo

from .axdr import AccessResult, encode_length
from .obis import ObisCode

READ_REQUEST = 0x05
READ_RESPONSE = 0x0C
VARIABLE_NAME = 0x02
PARAMETERISED_ACCESS = 0x04
DATA, DATA_ACCESS_ERROR, DATA_BLOCK_RESULT, BLOCK_NUMBER = 0, 1, 2, 3
#: The association SN: always at this base name, whatever the meter (Blue Book 4.4.3).
ASSOCIATION_SN_BASE = 0xFA00
ASSOCIATION_OBIS = ObisCode(0, 0, 40, 0, 0, 255)
ASSOCIATION_SN_CLASS = 12
ASSOCIATION_LN_CLASS = 15
#: data-access-result object-undefined / object-class-inconsistent (Blue Book).
OBJECT_UNDEFINED = 4
CLASS_INCONSISTENT = 9

#: First method offset and method count per interface class (Blue Book, short-name column).
METHODS: dict[int, tuple[int, int]] = {
    3: (0x28, 1),   # Register: reset
    4: (0x38, 1),   # Extended register: reset
    5: (0x48, 2),   # Demand register: reset, next_period
    7: (0x58, 4),   # Profile generic: reset, capture, (2 reserved)
    8: (0x60, 6),   # Clock: adjust_to_quarter ... shift_time
    12: (0x20, 8),  # Association SN
    70: (0x20, 2),  # Disconnect control: remote_disconnect, remote_reconnect
}


class ShortNameError(Exception):
    """The meter's association view does not offer what was asked (with a data-access-result code)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class SnObject:
    base_name: int
    class_id: int
    version: int


class ShortNames:
    """OBIS code -> the object's base name and class, from one association's object list."""

    def __init__(self, objects: dict[bytes, SnObject]) -> None:
        self.objects = objects

    @classmethod
    def from_object_list(cls, value: Any) -> "ShortNames":
        """Attribute 2 of the association SN, as gurux decoded it (a list of 4-element lists)."""
        objects: dict[bytes, SnObject] = {}
        for item in value or []:
            if not isinstance(item, (list, tuple)) or len(item) != 4:
                continue
            base, class_id, version, ln = item
            if isinstance(ln, (bytes, bytearray)) and len(ln) == 6:
                objects[bytes(ln)] = SnObject(int(base) & 0xFFFF, int(class_id), int(version))
        objects.setdefault(bytes(ASSOCIATION_OBIS), SnObject(ASSOCIATION_SN_BASE, ASSOCIATION_SN_CLASS, 0))
        return cls(objects)

    def _object(self, obis: ObisCode, class_id: int) -> SnObject:
        obj = self.objects.get(bytes(obis))
        if obj is None:
            raise ShortNameError(f"{obis} is not in the meter's object list", OBJECT_UNDEFINED)
        same = obj.class_id == class_id or (
            obj.class_id == ASSOCIATION_SN_CLASS and class_id == ASSOCIATION_LN_CLASS)
        if not same:
            raise ShortNameError(f"{obis} is class {obj.class_id} on this meter, not {class_id}", CLASS_INCONSISTENT)
        return obj

    def attribute(self, obis: ObisCode, class_id: int, attribute: int) -> int:
        return (self._object(obis, class_id).base_name + 8 * (attribute - 1)) & 0xFFFF

    def method(self, obis: ObisCode, class_id: int, method: int) -> int:
        obj = self._object(obis, class_id)
        offset, count = METHODS.get(obj.class_id, (0, 0))
        if not 1 <= method <= count:
            raise ShortNameError(f"class {obj.class_id} has no method {method} by short name", CLASS_INCONSISTENT)
        return (obj.base_name + offset + 8 * (method - 1)) & 0xFFFF


def read_request_pdu(items: Sequence[tuple[int, int | None, bytes | None]]) -> bytes:
    """ReadRequest: [(short name, selector or None, encoded parameters)]."""
    out = bytearray((READ_REQUEST,)) + encode_length(len(items))
    for name, selector, parameters in items:
        if selector is None:
            out += struct.pack(">BH", VARIABLE_NAME, name)
        else:
            out += struct.pack(">BHB", PARAMETERISED_ACCESS, name, selector) + (parameters or b"\x00")
    return bytes(out)


@dataclass(frozen=True, slots=True)
class DataBlock:
    """A data-block-result: one part of a response too large for one PDU."""

    last: bool
    number: int
    raw: bytes


def read_results(settings: Any, data: bytes) -> list[Any]:
    """The results of a whole ReadResponse (``0C`` ...) or of its reassembled block raw data.

    Each is a gurux value (as the rest of the session uses), an ``AccessResult``, or a
    ``DataBlock``. gurux 1.0.203 keeps no slot for a failed result of a list, and leaves the
    raw data of a block transfer undecoded: this decodes both.
    """
    buf = GXByteBuffer(bytes(data))
    if data[:1] == bytes((READ_RESPONSE,)):
        buf.getUInt8()
    results: list[Any] = []
    for _ in range(_GXCommon.getObjectCount(buf)):
        choice = buf.getUInt8()
        if choice == DATA:
            results.append(_GXCommon.getData(settings, buf, _GXDataInfo()))
        elif choice == DATA_ACCESS_ERROR:
            results.append(AccessResult(buf.getUInt8() if buf.available() else 250))
        elif choice == DATA_BLOCK_RESULT:
            last, number = buf.getUInt8(), buf.getUInt16()
            size = _GXCommon.getObjectCount(buf)
            raw = bytearray(size)
            buf.get(raw)
            results.append(DataBlock(bool(last), number, bytes(raw)))
        else:
            raise ValueError(f"ReadResponse result choice {choice} is not data, error or block")
    return results
