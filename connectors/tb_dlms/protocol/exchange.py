"""The request/reply machinery of a meter session: one message out, its whole reply back.

Why a module of its own: this is the part every other one stands on and the part a hostile or
confused meter attacks. It waits for frames on the session's mailbox, takes turns on a shared
link, resends, follows data blocks and HDLC windows, bounds a reply at maxReplyBytes, tells a
late reply from this exchange's (invoke id, expected command), and opens the common ciphered
get-responses with the C-backed GCM. Association, reads and writes only say what to send and
what may answer it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Iterable

from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
from gurux_dlms.GXDLMSConfirmedServiceError import GXDLMSConfirmedServiceError
from gurux_dlms.GXDLMSExceptionResponse import GXDLMSExceptionResponse
from gurux_dlms.enums import Command, ExceptionServiceError, ObjectType

from . import axdr, fast_gcm, gurux_compat, hdlc_fixes, security_fixes
from .errors import CipheringFailed, DlmsError, LinkClosed, MalformedReply, ProtocolError, ReplyTimeout, ReplyTooLarge
from .framing import HdlcFrame
from .link import ClosedNotice, Link, Mailbox
from .readings import AttributeRef
from .settings import Interface, MeterSettings
from .stats import SessionStats

log = logging.getLogger("tb_dlms.protocol.session")  # the session's logger, as before the split

_RESPONSES = (Command.GET_RESPONSE, Command.SET_RESPONSE, Command.METHOD_RESPONSE)
# What each request may be answered with; anything else is a leftover of an earlier exchange.
_UA = frozenset({Command.UA})
_AARE = frozenset({Command.AARE})
_RLRE = frozenset({Command.RELEASE_RESPONSE})
_DISC = frozenset({Command.UA, Command.DISCONNECT_MODE})
_GET = frozenset({Command.GET_RESPONSE})
_SET = frozenset({Command.SET_RESPONSE})
_METHOD = frozenset({Command.METHOD_RESPONSE})
_READ = frozenset({Command.READ_RESPONSE})
_WRITE = frozenset({Command.WRITE_RESPONSE})
_GLO_GET_RESPONSE = Command.GLO_GET_RESPONSE
#: Ciphered replies the C-backed GCM opens itself: glo-get-response (suite 0 service-specific) and
#: general-glo/general-ded ciphering (suites 1/2, dedicated key), which otherwise cost 2x High-GMAC.
_FAST_CIPHERED = frozenset({Command.GLO_GET_RESPONSE, Command.GENERAL_GLO_CIPHERING, Command.GENERAL_DED_CIPHERING})
_KNOWN_REPLIES = _UA | _AARE | _RLRE | _DISC | _GET | _SET | _METHOD | _READ | _WRITE

#: exception-response service errors that mean "your ciphering does not match mine".
_CIPHER_ERRORS = (ExceptionServiceError.DECIPHERING_ERROR, ExceptionServiceError.INVOCATION_COUNTER_ERROR)


class Exchange:
    """Round trips of one session over its link (``MeterSession`` builds the state declared here)."""

    settings: MeterSettings
    stats: SessionStats
    _link: Link | None
    _box: Mailbox | None
    _client: GXDLMSClient | None
    _objects: dict[tuple[int, str], Any]
    _invoke_id: int
    last_activity: float

    def _object(self, ref: AttributeRef) -> Any:
        key = (ref.class_id, str(ref.obis))
        obj = self._objects.get(key)
        if obj is None:
            known = ref.class_id in ObjectType._value2member_map_
            obj = GXDLMSClient.createObject(ObjectType(ref.class_id) if known else ref.class_id)
            obj.logicalName = str(ref.obis)
            self._objects[key] = obj
        return obj

    def _associated_client(self) -> GXDLMSClient:
        """The client _ensure_associated() just built; an abort() in between (a watchdog) clears it."""
        if self._client is None:
            raise LinkClosed("not connected", self.settings.label)
        return self._client

    def _next_invoke_id(self, client: GXDLMSClient) -> int:
        self._invoke_id = self._invoke_id % 15 + 1
        client.settings.invokeId = self._invoke_id
        return self._invoke_id

    async def _exchange(self, client: GXDLMSClient, frames: Iterable[bytes], expect: frozenset[int],
                        timeout_error: type[DlmsError] = ReplyTimeout, what: str = "no reply",
                        retries: int | None = None) -> GXReplyData:
        """Send a message (one or more frames) and collect the whole reply, blocks included."""
        reply = GXReplyData()
        for frame in frames:
            reply.clear()
            await self._round_trip(client, frame, reply, expect, timeout_error, what, retries)
            self._bound_reply(reply)
            while reply.isMoreData():
                nxt = None if reply.isStreaming() else client.receiverReady(reply)
                await self._round_trip(client, nxt, reply, expect, timeout_error, what, retries)
                self._bound_reply(reply)
        self.last_activity = time.monotonic()
        return reply

    def _bound_reply(self, reply: GXReplyData) -> None:
        """Stop receiving once a reply passes maxReplyBytes: checked after every block and segment,
        so a hostile meter (a legal multi-megabyte block transfer, a last block that never comes)
        costs at most the limit plus one PDU of memory, never the poll's whole deadline of them."""
        limit = self.settings.max_reply_bytes
        size = reply.data.size if reply.data is not None else 0
        if size > limit:
            held = bytes(reply.data.array())
            raise ReplyTooLarge(f"reply larger than maxReplyBytes ({limit} bytes; {size} received so far), "
                                f"refused and not read further", self.settings.label,
                                index=axdr.incomplete_result(held))

    async def _round_trip(self, client: GXDLMSClient, frame: bytes | None, reply: GXReplyData,
                          expect: frozenset[int], timeout_error: type[DlmsError], what: str, retries: int | None,
                          timeout: float | None = None) -> None:
        link, box = self._link, self._box
        if link is None or box is None:
            raise LinkClosed("not connected", self.settings.label)
        s = self.settings
        retries = s.retries if retries is None else retries
        timeout = s.timeout if timeout is None else timeout
        for attempt in range(retries + 1):
            # One turn per attempt: a resend queues behind the neighbours that waited meanwhile,
            # so a dead meter holds a shared bus one timeout at a time, not all its resends.
            async with link.turn:
                late = box.drain() if attempt == 0 else 0  # after that: the reply to an earlier attempt is ours
                if late:
                    self.stats.late_replies += late
                # Bytes of a frame nobody finished (a reply cut off before we gave up) are not ours.
                link.drop_partial()
                if frame is not None:
                    data = bytes(frame)
                    await link.send(data)
                    self.stats.bytes_sent += len(data)
                    self.stats.round_trips += 1
                    if attempt:
                        self.stats.resends += 1
                if await self._await_reply(client, box, reply, expect, timeout):
                    self.stats.bytes_received = box.bytes_received
                    return
        link.unconfirm(box.address)
        raise timeout_error(f"{what} within {timeout:g} s after {retries + 1} attempt(s)", s.label)

    async def _await_reply(self, client: GXDLMSClient, box: Mailbox, reply: GXReplyData, expect: frozenset[int],
                           timeout: float | None = None) -> bool:
        """True once a frame completed the reply; False when the deadline passed."""
        try:
            async with asyncio.timeout(self.settings.timeout if timeout is None else timeout):
                while True:
                    item = await box.queue.get()
                    if isinstance(item, ClosedNotice):
                        box.queue.put_nowait(item)
                        raise LinkClosed(item.reason, self.settings.label)
                    if self._accept(client, item.raw, reply, expect):
                        if isinstance(item, HdlcFrame) and reply.isMoreData() and not hdlc_fixes.final(item.control):
                            # Inside an HDLC window: the meter keeps the bus and sends on; one RR
                            # (and one turnaround) per window, not per frame.
                            continue
                        return True
        except TimeoutError:
            return False

    def _accept(self, client: GXDLMSClient, raw: bytes, reply: GXReplyData, expect: frozenset[int]) -> bool:
        if expect is _GET and self.settings.interface is Interface.WRAPPER and not reply.isMoreData():
            opened = self._decipher_glo_get(client, raw) if len(raw) > 9 and raw[8] in _FAST_CIPHERED else raw
            fast = self._accept_plain_get(client, opened, reply) if opened is not None else None
            if fast is not None:
                return fast
            # Declined (a data block, a type the fast path does not decode): gurux gets the frame
            # as it came, still ciphered, never our opened copy.
        try:
            complete = client.getData(GXByteBuffer(raw), reply, None)
        except GXDLMSExceptionResponse as exc:
            if exc.exceptionServiceError in _CIPHER_ERRORS:
                raise CipheringFailed(f"the meter could not decipher our request ({exc})",
                                      self.settings.label) from exc
            raise ProtocolError(f"meter refused the request ({exc}); re-associating",
                                self.settings.label) from exc
        except GXDLMSConfirmedServiceError as exc:
            # The meter understood us and refused: typically it lost our association (reboot).
            raise ProtocolError(f"meter refused the request ({exc}); re-associating",
                                self.settings.label) from exc
        except Exception as exc:  # noqa: BLE001 - gurux raises bare Exception too (foreign addresses)
            if security_fixes.is_decrypt_defect(exc):  # W3: not a stray frame, a reply we cannot open
                raise CipheringFailed("the meter's reply could not be deciphered (general-ciphering with a key "
                                      "agreement we did not make: check security.suite and the keys)",
                                      self.settings.label) from None
            # A frame that does not belong to this exchange (an old reply, a corrupted one).
            self.stats.late_replies += 1
            log.debug("%s: dropped frame %s: %s", self.settings.label, raw[:16].hex(), exc)
            reply.clear()
            return False
        if not complete:
            return False
        command = reply.command
        if command == Command.DISCONNECT_MODE and command not in expect:
            raise LinkClosed("meter is in disconnected mode (rebooted or dropped the link)", self.settings.label)
        stale = command in _KNOWN_REPLIES and command not in expect
        if not stale and command in _RESPONSES and not reply.isMoreData():
            stale = (reply.invokeId & 0x0F) != self._invoke_id
        if stale:
            # The reply to a request we already gave up on: drop it and keep waiting.
            self.stats.late_replies += 1
            reply.clear()
            return False
        if command == Command.GET_RESPONSE and not reply.isMoreData() and reply.data is not None:
            try:
                held = bytes(reply.data.array())
                values = gurux_compat.list_result_from_blocks(client, held)
                if values is not None:
                    reply.value = values
                else:
                    axdr.check_value(held)
            except axdr.Malformed as exc:
                raise MalformedReply(f"reply does not decode: {exc}", self.settings.label, index=exc.index) from None
        return True

    def _decipher_glo_get(self, client: GXDLMSClient, raw: bytes) -> bytes | None:
        """A ciphered get-response (authenticated and encrypted) opened with the C-backed GCM.

        glo-get-response (suite 0), or general-glo / general-ded ciphering, which carry the
        meter's system title and any suite (ded: the association's dedicated key). Returns the
        frame with its plain APDU, for the plain fast path; None leaves the frame to gurux (other
        security policies, a bad tag: gurux then reports it as it always did).
        """
        try:
            command, i = raw[8], 9
            cipher = client.settings.cipher
            key = cipher.blockCipherKey
            title = client.settings.sourceSystemTitle
            if command != _GLO_GET_RESPONSE:
                title = raw[10:10 + raw[9]]
                i = 10 + raw[9]
                if command == Command.GENERAL_DED_CIPHERING:
                    key = cipher.dedicatedKey
            length, i = axdr._length(raw, i)
            body = raw[i:i + length]
            if len(body) < 17 or body[0] & 0xF0 != 0x30 or title is None or len(title) != 8 or not key:
                return None
            iv = bytes(title) + body[1:5]
            plain = fast_gcm.open_sealed(bytes(key), iv, body[:1] + bytes(cipher.authenticationKey),
                                         body[5:-12], body[-12:])
        except Exception:  # noqa: BLE001 - anything unusual goes the gurux way
            return None
        return raw[:8] + plain

    def _accept_plain_get(self, client: GXDLMSClient, raw: bytes, reply: GXReplyData) -> bool | None:
        """Decode a plain one-frame GET response ourselves; None hands it to gurux."""
        try:
            invoke, values = axdr.parse_get_response(raw[8:])
        except axdr.Unsupported:
            return None
        except axdr.Malformed as exc:
            if len(raw) > 10 and (raw[10] & 0x0F) != self._invoke_id:
                self.stats.late_replies += 1  # an old reply, garbled: not this exchange's
                return False
            raise MalformedReply(f"reply does not decode: {exc}", self.settings.label, index=exc.index) from None
        if (invoke & 0x0F) != self._invoke_id:
            self.stats.late_replies += 1
            return False
        reply.command = Command.GET_RESPONSE
        reply.invokeId = invoke
        if raw[9] == axdr.NORMAL:
            value = values[0]
            reply.error = value.code if isinstance(value, axdr.AccessResult) else 0
            reply.value = None if reply.error else value
        else:
            reply.value = values
        return True
