"""What a session reads and writes by attribute: GET, GET-with-list, short names, and readings.

Why a module of its own: turning attribute references into the fewest requests the association
allows (ten to a GET-with-list, fewer when the negotiated PDU is small, hand-built frames in the
plain case; ReadRequest/WriteRequest by short name on older meters), and the replies into
``Reading`` values with their scalers, units and clock status, is one job, separate from how an
association is made (association.py) and how a message travels (exchange.py).
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Sequence, TypeVar

from gurux_dlms import GXByteBuffer, GXDLMSClient
from gurux_dlms.GXDLMS import GXDLMS
from gurux_dlms.enums import Command, Conformance, ObjectType

from . import axdr, gurux_compat
from . import short_names as sn
from .errors import AccessError, BadReply, MalformedReply, ProtocolError
from .exchange import _GET, _READ, _WRITE, Exchange
from .obis import ObisCode
from .profile import CaptureObject
from .readings import AttributeRef, Reading
from .values import apply_scaler, decode_clock, plain, unit_text

log = logging.getLogger("tb_dlms.protocol.session")  # the session's logger, as before the split
T = TypeVar("T")
#: gurux splits GET-with-list requests at 10 attributes; we chunk the same way so that each
#: chunk is exactly one request and one reply.
MAX_LIST = 10


class Reads(Exchange):
    """Attribute reads and writes of one association, by logical or short name."""

    _scalers: dict[AttributeRef, tuple[int, int]]
    _profiles: dict[ObisCode, tuple[list[CaptureObject], int]]
    #: Short names of this association's objects (SN referencing), read on first use.
    _short_names: sn.ShortNames | None

    async def _ensure_associated(self) -> None:
        """Associate unless associated (association.Association, which every session is)."""
        raise NotImplementedError

    async def _read(self, refs: Sequence[AttributeRef]) -> list[Reading]:
        await self._ensure_associated()
        scaler_refs = [
            AttributeRef(r.obis, r.class_id, 3) for r in dict.fromkeys(refs) if r.has_scaler and r not in self._scalers
        ]
        wanted = list(refs) + scaler_refs
        raw = await self._get_raw(wanted)
        for sref, value in zip(scaler_refs, raw[len(refs):], strict=True):  # _get_raw: one per ref
            self._remember_scaler(sref, value)
        readings = [self._decode(ref, value) for ref, value in zip(refs, raw[:len(refs)], strict=True)]
        self.stats.readings += sum(1 for r in readings if r.ok)
        return readings

    def _decode(self, ref: AttributeRef, value: Any) -> Reading:
        if isinstance(value, gurux_compat.AccessResult):
            return Reading(ref, error=f"{ref}: {value.name}")
        if ref.class_id == 8 and ref.attribute == 2:
            clock = decode_clock(value, self.settings.deviation_utc_minus_local)
            if clock is None:
                return Reading(ref, error=f"{ref}: clock not set")
            if "invalid" in clock["status"]:
                # The meter itself says this time is wrong (e.g. after a power cut without backup).
                return Reading(ref, clock["iso"], error=f"{ref}: meter reports its clock invalid")
            return Reading(ref, clock["iso"])
        if ref.has_scaler:
            scaler, unit = self._scalers.get(ref, (None, None))
            return Reading(ref, apply_scaler(plain(value), scaler), self._unit_text(unit), scaler)
        return Reading(ref, plain(value))

    async def _get_raw(self, refs: Sequence[AttributeRef], client: GXDLMSClient | None = None) -> list[Any]:
        """Raw gurux values, or AccessResult for attributes the meter refused."""
        client = client or self._client
        assert client is not None
        if not client.useLogicalNameReferencing:
            return await self._get_raw_sn(refs, client)
        multiple = bool(client.negotiatedConformance & Conformance.MULTIPLE_REFERENCES)
        values: list[Any] = []
        if multiple and len(refs) > 1:
            for chunk in _chunks(refs, _list_size(client)):
                self._next_invoke_id(client)
                messages = self._list_request(client, chunk)
                for message in messages:
                    try:
                        reply = await self._exchange(client, message, _GET)
                    except BadReply as exc:
                        raise exc.naming(chunk) from None
                    got = reply.value if isinstance(reply.value, list) else [reply.value]
                    if len(got) != len(chunk):
                        raise ProtocolError(f"asked for {len(chunk)} attributes, got {len(got)}", self.settings.label)
                    values.extend(got)
        else:
            for ref in refs:
                self._next_invoke_id(client)
                try:
                    reply = await self._exchange(client, client.read(self._object(ref), ref.attribute), _GET)
                except BadReply as exc:
                    raise exc.naming([ref]) from None
                values.append(gurux_compat.AccessResult(reply.error) if reply.error else reply.value)
        return values

    # -- short-name referencing ---------------------------------------------------------------

    async def _names(self, client: GXDLMSClient) -> sn.ShortNames:
        """This association's short names: its object list, read on first use, then cached."""
        if self._short_names is None:
            value = (await self._read_sn(client, [(sn.ASSOCIATION_SN_BASE + 8, None, None)]))[0]
            if isinstance(value, axdr.AccessResult):
                raise AccessError(f"object list of the association SN (0.0.40.0.0.255): {value.name}",
                                  self.settings.label)
            self._short_names = sn.ShortNames.from_object_list(value)
            log.debug("%s: %d objects by short name", self.settings.label, len(self._short_names.objects))
        return self._short_names

    async def _get_raw_sn(self, refs: Sequence[AttributeRef], client: GXDLMSClient) -> list[Any]:
        """As _get_raw, by short name: one ReadRequest of up to ten names when the meter takes lists."""
        names = await self._names(client)
        values: list[Any] = [None] * len(refs)
        wanted: list[tuple[int, int]] = []
        for i, ref in enumerate(refs):
            try:
                wanted.append((i, names.attribute(ref.obis, ref.class_id, ref.attribute)))
            except sn.ShortNameError as exc:
                log.debug("%s: %s: %s", self.settings.label, ref, exc)
                values[i] = axdr.AccessResult(exc.code)
        size = MAX_LIST if client.negotiatedConformance & Conformance.MULTIPLE_REFERENCES else 1
        for chunk in _chunks(wanted, size):
            try:
                got = await self._read_sn(client, [(name, None, None) for _, name in chunk])
            except BadReply as exc:
                raise exc.naming([refs[i] for i, _ in chunk]) from None
            for (i, _), value in zip(chunk, got, strict=True):
                values[i] = value
        return values

    async def _read_sn(self, client: GXDLMSClient, items: Sequence[tuple[int, int | None, bytes | None]]) -> list[Any]:
        """One ReadRequest (blocks included) -> one value or AccessResult per item."""
        if len(items) == 1:
            name, selector, parameters = items[0]
            data = GXByteBuffer(bytes((selector,)) + (parameters or b"")) if selector is not None else None
            frames = client._read(name, ObjectType.NONE, 1, data)
        else:
            client.settings.resetBlockIndex()
            client.settings.command = Command.READ_REQUEST  # what a block continuation repeats
            frames = gurux_compat.frames_for_pdu(client, sn.read_request_pdu(items), Command.READ_REQUEST)
            if frames is None:  # a list that needs HDLC segmentation: one name at a time
                return [v for item in items for v in await self._read_sn(client, [item])]
        reply = await self._exchange(client, frames, _READ)
        if len(items) == 1 and reply.commandType != sn.DATA_BLOCK_RESULT:
            # gurux decoded a single result itself (and kept only the value's bytes).
            return [axdr.AccessResult(reply.error) if reply.error else reply.value]
        try:
            # A list (the whole PDU is kept), or the raw data of a block transfer (gurux leaves it undecoded).
            results = sn.read_results(client.settings, bytes(reply.data.array()))
        except Exception as exc:  # noqa: BLE001 - gurux's buffer raises bare ValueError on short data
            raise MalformedReply(f"ReadResponse does not decode: {exc}", self.settings.label) from None
        if any(isinstance(r, sn.DataBlock) for r in results):
            raise MalformedReply("ReadResponse holds a data block inside a block transfer", self.settings.label)
        if len(results) != len(items):
            raise ProtocolError(f"asked for {len(items)} attributes, got {len(results)}", self.settings.label)
        return results

    async def _write_sn(self, client: GXDLMSClient, name: int, value: Any, dtype: int, what: str) -> None:
        frames = client._GXDLMSClient__write(name, value, dtype, ObjectType.NONE, 1)
        reply = await self._exchange(client, frames, _WRITE)
        if reply.error:
            raise AccessError(f"{what} refused: {gurux_compat.AccessResult(reply.error).name}", self.settings.label)

    async def _sn_name(self, client: GXDLMSClient, ref: AttributeRef, method: bool = False) -> int:
        names = await self._names(client)
        try:
            if method:
                return names.method(ref.obis, ref.class_id, ref.attribute)
            return names.attribute(ref.obis, ref.class_id, ref.attribute)
        except sn.ShortNameError as exc:
            raise AccessError(f"{ref}: {exc}", self.settings.label) from None

    def _list_request(self, client: GXDLMSClient, chunk: Sequence[AttributeRef]) -> list[list[bytes]]:
        """GET-with-list frames; built by hand in the plain case (a third of gurux's CPU)."""
        settings = client.settings
        if not gurux_compat.is_ciphered(client) and (settings.maxPduSize or 0xFFFF) >= 12 + 11 * len(chunk):
            pdu = axdr.get_with_list_pdu(
                [(r.class_id, bytes(r.obis), r.attribute) for r in chunk],
                GXDLMS.getInvokeIDPriority(settings),
            )
            settings.resetBlockIndex()
            frames = gurux_compat.frames_for_pdu(client, pdu, Command.GET_REQUEST)
            if frames is not None:
                gurux_compat.record_get_with_list(client)  # for a reply that comes in data blocks
                return [frames]
        messages: list[list[bytes]] = client.readList([(self._object(r), r.attribute) for r in chunk])
        return messages

    def _remember_scaler(self, sref: AttributeRef, value: Any) -> None:
        scaler_unit = plain(value) if not isinstance(value, axdr.AccessResult) else None
        if isinstance(scaler_unit, list) and len(scaler_unit) == 2:
            self._scalers[AttributeRef(sref.obis, sref.class_id, 2)] = (int(scaler_unit[0]), int(scaler_unit[1]))

    def scaler_of(self, ref: AttributeRef) -> int | None:
        """Scaler of a register read in this association (pushes carry raw values)."""
        return self._scalers.get(ref, (None, None))[0]

    def unit_of(self, ref: AttributeRef) -> str | None:
        """Unit text of a register read in this association (profiles report values only)."""
        return self._unit_text(self._scalers.get(ref, (None, None))[1])

    def _unit_text(self, code: int | None) -> str | None:
        """The unit's text; ``unitOverrides`` first (a meter reporting a wrong unit code)."""
        override = self.settings.unit_override(code) if code is not None else None
        return override if override is not None else unit_text(code)


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _list_size(client: GXDLMSClient) -> int:
    """Attributes per GET-with-list request: MAX_LIST, fewer when the negotiated PDU cannot carry
    that many descriptors in one request (a GET request has no blocks). A descriptor takes 11
    bytes after a 12-byte allowance for the header, ciphering 22 more. gurux 1.0.203's readList
    splits a longer list itself, with a float count that fails (TypeError) below 112 bytes."""
    overhead = _CIPHERING_OVERHEAD if gurux_compat.is_ciphered(client) else 0
    room = (client.settings.maxPduSize or 0xFFFF) - 12 - overhead
    return max(1, min(MAX_LIST, room // 11))


#: What gurux adds to a ciphered APDU (GXDLMS.__CIPHERING_HEADER_SIZE in 1.0.203).
_CIPHERING_OVERHEAD = 22
