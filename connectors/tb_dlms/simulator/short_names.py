"""Short-name (SN) referencing for the simulated meter: ReadRequest and WriteRequest served here.

gurux-dlms 1.0.203's SN server cannot serve a read (``GXDLMSSNCommandHandler``: attribute
indexes computed as floats, ``server.transaction()`` called as a function, the first result's
choice taken from the last result, the object list cut at the PDU size through a method that
does not exist), and its method offsets (``GXDLMS.getActionInfo``) lost their ``elif`` chain, so
a clock or profile gets another class's offsets. So the SN services are implemented here from
the Blue Book / IEC 62056-5-3, with gurux only for the objects and the value encoding:

- every object has a base name (attribute 1); attribute n is ``base + 8 (n - 1)``; method m is
  ``base + first_method_offset(class) + 8 (m - 1)`` (the offsets: Blue Book, "short name" column);
- ``ReadRequest``: a SEQUENCE OF variable-access-specification (variable-name [2],
  parameterised-access [4], block-number-access [5]); ``ReadResponse``: a SEQUENCE OF CHOICE
  (data [0], data-access-error [1], data-block-result [2]); a reply larger than the negotiated
  PDU goes in data blocks whose raw data is the encoded SEQUENCE OF CHOICE (as a real SN meter
  sends it: see the known-answer test), fetched by block-number-access;
- ``WriteRequest``: names, then data; ``WriteResponse``: success [0] or data-access-error [1];
  a method is invoked by writing its name (what SN clients, gurux's included, send).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gurux_dlms import GXByteBuffer, ValueEventArgs
from gurux_dlms.GXDLMS import GXDLMS
from gurux_dlms.enums import AccessMode, ErrorCode, InterfaceType, MethodAccessMode, ObjectType
from gurux_dlms.internal._GXCommon import _GXCommon
from gurux_dlms.internal._GXDataInfo import _GXDataInfo

# The Blue Book's short-name layout (method offsets per class), shared with the client on purpose:
# it is the standard's table, checked against published frames in tests/protocol/test_short_names.py.
from ..protocol import axdr
from ..protocol.axdr import DataType
from ..protocol.short_names import ASSOCIATION_SN_BASE, METHODS

READ_REQUEST, READ_RESPONSE, WRITE_REQUEST, WRITE_RESPONSE = 0x05, 0x0C, 0x06, 0x0D
VARIABLE_NAME, PARAMETERISED_ACCESS, BLOCK_NUMBER_ACCESS = 0x02, 0x04, 0x05
DATA, DATA_ACCESS_ERROR, DATA_BLOCK_RESULT = 0x00, 0x01, 0x02
LLC_REPLY = bytes((0xE6, 0xE7, 0x00))

@dataclass(frozen=True, slots=True)
class Target:
    obj: Any
    index: int
    method: bool


class NameTable:
    """Short name -> (object, attribute or method) for one association view."""

    def __init__(self, objects: list) -> None:
        self.objects = objects
        self._by_name: dict[int, Target] = {}
        for obj in objects:
            base = obj.shortName
            for n in range(1, obj.getAttributeCount() + 1):
                self._by_name[base + 8 * (n - 1)] = Target(obj, n, False)
            offset, count = METHODS.get(int(obj.objectType), (0, 0))
            for m in range(1, count + 1):
                self._by_name[base + offset + 8 * (m - 1)] = Target(obj, m, True)

    def find(self, name: int) -> Target | None:
        return self._by_name.get(name)

    def object_list(self) -> bytes:
        """Association SN attribute 2: array of {base_name long, class_id, version, logical_name}."""
        return axdr.array([
            axdr.structure(axdr.integer(DataType.INT16, _signed16(obj.shortName)),
                           axdr.integer(DataType.UINT16, int(obj.objectType)),
                           axdr.integer(DataType.UINT8, obj.version),
                           axdr.octets(bytes(int(x) for x in obj.logicalName.split("."))))
            for obj in self.objects])


def _signed16(name: int) -> int:
    """A base name is ObjectName ::= Integer16 (long): 0xFA00 goes on the wire as -1536."""
    return name - 0x10000 if name >= 0x8000 else name


class SnServer:
    """The SN services of one MeterServer (one association): reads, writes, pending blocks."""

    def __init__(self, server, table: NameTable) -> None:
        self.server = server
        self.table = table
        self._blocks: bytes = b""
        self._block_number = 0

    # ---- read ------------------------------------------------------------------------
    def read(self, data: GXByteBuffer, reply: GXByteBuffer) -> None:
        settings = self.server.settings
        count = _GXCommon.getObjectCount(data)
        results: list[bytes] = []
        for _ in range(count):
            kind = data.getUInt8()
            if kind == BLOCK_NUMBER_ACCESS:
                self._next_block(data.getUInt16(), reply)
                return
            name = data.getUInt16()
            selector, parameters = 0, None
            if kind == PARAMETERISED_ACCESS:
                selector = data.getUInt8()
                parameters = _GXCommon.getData(settings, data, _GXDataInfo())
            elif kind != VARIABLE_NAME:
                results.append(bytes((DATA_ACCESS_ERROR, ErrorCode.READ_WRITE_DENIED)))
                continue
            results.append(self._read_one(name, selector, parameters))
        body = axdr.encode_length(len(results)) + b"".join(results)
        if 1 + len(body) <= self._pdu_size():
            self._send(reply, bytes((READ_RESPONSE,)) + body)
            return
        self._blocks, self._block_number = body, 0
        self._next_block(0, reply)

    def _read_one(self, name: int, selector: int, parameters) -> bytes:
        target = self.table.find(name)
        if target is None:
            return bytes((DATA_ACCESS_ERROR, ErrorCode.UNDEFINED_OBJECT))
        server, settings = self.server, self.server.settings
        e = ValueEventArgs(server, target.obj, target.index, selector, parameters)
        if target.method:
            if server.onGetMethodAccess(e) == MethodAccessMode.NO_ACCESS:
                return bytes((DATA_ACCESS_ERROR, ErrorCode.READ_WRITE_DENIED))
            server.onPreAction([e])
            return bytes((DATA_ACCESS_ERROR, e.error)) if e.error else bytes((DATA, 0))
        if target.obj.shortName == ASSOCIATION_SN_BASE and target.index == 2:
            return bytes((DATA,)) + self.table.object_list()
        if server.onGetAttributeAccess(e) == AccessMode.NO_ACCESS:
            return bytes((DATA_ACCESS_ERROR, ErrorCode.READ_WRITE_DENIED))
        if e.error:
            return bytes((DATA_ACCESS_ERROR, e.error))
        try:
            if e.handled:
                value = e.value
            else:
                value = target.obj.getValue(settings, e)
            tmp = GXByteBuffer()
            if e.byteArray:
                tmp.set(value)
            else:
                GXDLMS.appendData(settings, target.obj, target.index, tmp, value)
        except Exception:  # noqa: BLE001 - one attribute must not spoil the reply
            return bytes((DATA_ACCESS_ERROR, ErrorCode.HARDWARE_FAULT))
        return bytes((DATA,)) + bytes(tmp.array())

    def _next_block(self, acknowledged: int, reply: GXByteBuffer) -> None:
        """Send the block after ``acknowledged`` (block-number-access names the last block the
        client received, as GET-Request-Next does for LN)."""
        if not self._blocks or acknowledged != self._block_number:
            self._blocks, self._block_number = b"", 0
            self._send(reply, bytes((READ_RESPONSE, 1, DATA_ACCESS_ERROR, ErrorCode.DATA_BLOCK_NUMBER_INVALID)))
            return
        size = self._pdu_size() - 9  # 0C 01 02, last, number (2), length (82 xx xx)
        chunk, self._blocks = self._blocks[:size], self._blocks[size:]
        self._block_number = number = acknowledged + 1
        last = 0 if self._blocks else 1
        if last:
            self._block_number = 0
        self._send(reply, bytes((READ_RESPONSE, 1, DATA_BLOCK_RESULT, last)) + number.to_bytes(2, "big")
                   + axdr.encode_length(len(chunk)) + chunk)

    # ---- write -----------------------------------------------------------------------
    def write(self, data: GXByteBuffer, reply: GXByteBuffer) -> None:
        settings = self.server.settings
        names = []
        for _ in range(_GXCommon.getObjectCount(data)):
            kind = data.getUInt8()
            names.append(data.getUInt16() if kind == VARIABLE_NAME else None)
        out = bytearray((WRITE_RESPONSE,)) + axdr.encode_length(len(names))
        for name in names[:_GXCommon.getObjectCount(data)]:
            value = _GXCommon.getData(settings, data, _GXDataInfo())
            target = self.table.find(name) if name is not None else None
            code = self._write_one(target, value) if target is not None else ErrorCode.UNDEFINED_OBJECT
            out += bytes((DATA,)) if code == 0 else bytes((DATA_ACCESS_ERROR, code))
        self._send(reply, bytes(out))

    def _write_one(self, target: Target, value) -> int:
        server = self.server
        e = ValueEventArgs(server, target.obj, target.index, 0, value)
        if target.method:
            if server.onGetMethodAccess(e) == MethodAccessMode.NO_ACCESS:
                return ErrorCode.READ_WRITE_DENIED
            server.onPreAction([e])
            return int(e.error or 0)
        if server.onGetAttributeAccess(e) not in (AccessMode.WRITE, AccessMode.READ_WRITE):
            return ErrorCode.READ_WRITE_DENIED
        e.value = value
        server.onPreWrite([e])
        return int(e.error or 0)

    def _pdu_size(self) -> int:
        """The negotiated maximum PDU (0 means no limit: Green Book)."""
        return max(64, int(self.server.settings.maxPduSize or 0xFFFF))

    def _send(self, reply: GXByteBuffer, pdu: bytes) -> None:
        if self.server.settings.interfaceType == InterfaceType.HDLC:
            reply.set(LLC_REPLY)
        reply.set(pdu)


def assign_short_names(objects: list) -> None:
    """Base names as a real SN meter lays them out: each object's names, methods included, in
    one range, the association SN at its reserved 0xFA00. Deterministic, so the shared objects
    get the same names whichever meter sets them first."""
    name = 0x0100
    for obj in objects:
        if int(obj.objectType) == ObjectType.ASSOCIATION_SHORT_NAME:
            obj.shortName = ASSOCIATION_SN_BASE
            continue
        if not obj.shortName:
            obj.shortName = name
        offset, count = METHODS.get(int(obj.objectType), (0, 0))
        span = max(8 * obj.getAttributeCount(), offset + 8 * count)
        name = obj.shortName + (span + 0xFF) // 0x100 * 0x100
