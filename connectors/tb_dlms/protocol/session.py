"""A meter session: one association with one meter, driven from an asyncio event loop.

gurux's client is used sans-IO: it builds request frames and parses replies; everything that
waits (sockets, deadlines, resends, turn-taking on a shared serial server) lives here, so that
thousands of meters share one thread. A session keeps its association open between polls (a
meter needs seconds to accept a new one) and rebuilds it after any failure, on next use.

One operation at a time per session: polls and RPCs for the same meter queue on ``_busy``.

This module is the public face (``MeterSession``: its locking, and ``_guard``, which turns any
failure into a rebuild on next use) plus the writes and methods; the work is layered below it:
exchange.py (one message out, its reply back), reads.py (GET, GET-with-list, short names,
readings), profile_buffer.py (a profile's rows) and association.py (AARQ/AARE, HLS, release).
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import time
from dataclasses import replace
from typing import Any, Awaitable, Sequence, TypeVar

from gurux_dlms import GXByteBuffer, GXDLMSClient
from gurux_dlms.enums import DataType
from gurux_dlms.internal._GXCommon import _GXCommon

from . import fast_gcm, gurux_compat, key_transfer, profile, quiet
from . import short_names as sn
from .association import RELEASE_TIMEOUT as RELEASE_TIMEOUT
from .association import Association
from .axdr import data_type
from .errors import (
    AccessError,
    DlmsError,
    InvalidValue,
    KeysChangedButUnusable,
    LinkClosed,
    ProtocolError,
    ReplyTimeout,
    ReplyTooLarge,
)
from .exchange import _GET as _GET  # noqa: F401 - tests/resilience/test_fuzz_replies.py feeds _accept with it
from .exchange import _METHOD, _SET
from .obis import ObisCode
from .profile import ProfileData
from .profile_buffer import ProfileBuffer
from .reads import MAX_LIST as MAX_LIST
from .readings import AttributeRef, Reading
from .settings import MeterSettings, Secret
from .stats import SessionStats
from .values import plain
from .link import Link, LinkProvider, Mailbox
from .mode_e import Identification
from .pools import link_pool

log = logging.getLogger(__name__)
T = TypeVar("T")
quiet.silence_gurux()
# gurux's AES-GCM is pure Python: High-GMAC reads cost 15x a plain one without this.
fast_gcm.install()

#: Object read as a keep-alive: the current association's logical name is always readable.
_KEEPALIVE = AttributeRef.of("0.0.40.0.0.255", 15, 1)


class MeterSession(Association, ProfileBuffer):
    """One association; its frames go over the ``Link`` that ``links`` hands out for its endpoint
    (``pools.link_pool()``: TCP and serial links, unless given), never over a socket of its own."""

    def __init__(self, settings: MeterSettings, links: LinkProvider | None = None) -> None:
        self.settings = settings
        self.stats = SessionStats()
        self._links: LinkProvider = links or link_pool()
        self._link: Link | None = None
        self._box: Mailbox | None = None
        self._client: GXDLMSClient | None = None
        self._associated = False
        self._busy = asyncio.Lock()
        self._scalers: dict[AttributeRef, tuple[int, int]] = {}
        self._objects: dict[tuple[int, str], Any] = {}
        self._profiles: dict[ObisCode, tuple[list[profile.CaptureObject], int]] = {}
        self._invoke_id = 0
        #: Short names of this association's objects (SN referencing), read on first use.
        self._short_names: sn.ShortNames | None = None
        #: When the last association attempt started (monotonic), for minAssociationIntervalS.
        self._last_association_attempt: float | None = None
        self._ecdsa: tuple[Any, Any] | None = None
        self.last_activity = 0.0
        self.multiple_references = False

    # -- public API ---------------------------------------------------------------------------

    @property
    def identification(self) -> str | None:
        """The meter's IEC 62056-21 identification, when its link signed on in mode E."""
        # Only a serial link signs on (protocol.serial_link, imported only where a port is configured).
        ident = getattr(self._link, "identification", None)
        return ident.raw if isinstance(ident, Identification) else None

    async def connect(self) -> None:
        """Open transport and associate (SNRM/UA, frame counter, AARQ/AARE). Idempotent."""
        async with self._busy:
            await self._guard(self._ensure_associated())

    async def read(self, refs: Sequence[AttributeRef]) -> list[Reading]:
        """Read many attributes, ten to a GET-with-list request; per-attribute errors in Reading.error."""
        async with self._busy:
            return await self._guard(self._read(refs))

    async def get(self, ref: AttributeRef) -> Reading:
        return (await self.read([ref]))[0]

    async def set(self, ref: AttributeRef, value: Any, data_type_name: str | None = None) -> None:
        async with self._busy:
            await self._guard(self._set(ref, value, data_type_name))

    async def action(self, ref: AttributeRef, value: Any = 0, data_type_name: str | None = "int8") -> Any:
        """Invoke method ``ref.attribute`` of the object (e.g. disconnect control method 1)."""
        async with self._busy:
            return await self._guard(self._action(ref, value, data_type_name))

    async def read_profile(self, obis: ObisCode | str, start: _dt.datetime | None = None,
                           end: _dt.datetime | None = None, *, entries: tuple[int, int] | None = None,
                           local_offset_min: int | None = None) -> ProfileData:
        """Rows of a Profile Generic: by time range (start..end), by entry (first, last), or all.

        Raises AccessError when the meter refuses the selector (some reject ranges): the caller
        may then read by entry.
        """
        code = ObisCode.parse(obis)
        if entries is not None:
            selector = profile.entry_selector(*entries)
        elif start is not None and end is not None:
            selector = None  # built once the clock column is known
        else:
            selector = b""
        async with self._busy:
            return await self._guard(self._read_profile(code, selector, start, end, local_offset_min))

    async def profile_entries(self, obis: ObisCode | str) -> int:
        """How many rows the profile holds now (entries_in_use), for reading by entry."""
        reading = await self.get(AttributeRef(ObisCode.parse(obis), profile.PROFILE_CLASS, profile.ENTRIES_IN_USE))
        if not reading.ok:
            raise AccessError(f"entries_in_use of {obis}: {reading.error}", self.settings.label)
        return int(reading.value)

    async def keep_alive(self) -> bool:
        """Touch the association if it has been idle for half the meter's inactivity timeout."""
        if not self.associated or self._busy.locked():
            return False
        if time.monotonic() - self.last_activity < self.settings.inactivity_timeout / 2:
            return False
        async with self._busy:
            await self._guard(self._get_raw([_KEEPALIVE]))
        return True

    async def change_keys(self, block_cipher_key: bytes, authentication_key: bytes,
                          security_setup: ObisCode | None = None) -> None:
        """Transfer new global keys (wrapped with the master key), then associate with them.

        ``security_setup`` is the Security Setup object (None: 0.0.43.0.0.255, the management
        association's).

        Returns only once an association with the new keys works; from then on this session uses
        them. A refused transfer raises AccessError and the old keys stay in use (the meter
        keeps them too). Raises KeysChangedButUnusable when the meter took the keys but the new
        association failed: the caller must not go back to the old keys.
        """
        async with self._busy:
            setup = key_transfer.DEFAULT_SECURITY_SETUP if security_setup is None else security_setup
            await self._guard(self._change_keys(bytes(block_cipher_key), bytes(authentication_key), setup))

    async def close(self) -> None:
        """Release the association and close the transport. Never raises."""
        async with self._busy:
            await self._teardown(release=True)

    async def abort(self) -> None:
        """Drop everything at once, without a word to the meter (a stuck operation, a watchdog)."""
        await self._teardown(release=False, close_link=True)

    async def _change_keys(self, bck: bytes, ak: bytes, setup: ObisCode) -> None:
        s = self.settings
        sec = s.security
        if sec is None or not sec.policy.ciphered or sec.master_key is None:
            raise InvalidValue("a key change needs ciphering and security.masterKey (the KEK)", s.label)
        if len(bck) != sec.key_size or len(ak) != sec.key_size:
            raise InvalidValue(f"new keys must be {sec.key_size} bytes for security suite {sec.suite}", s.label)
        await self._ensure_associated()
        client = self._associated_client()
        self._next_invoke_id(client)
        param = key_transfer.transfer_parameter(sec.master_key, {key_transfer.KeyId.GLOBAL_UNICAST_ENCRYPTION: bck,
                                                                 key_transfer.KeyId.AUTHENTICATION: ak})
        ref = AttributeRef(setup, key_transfer.SECURITY_SETUP_CLASS, key_transfer.GLOBAL_KEY_TRANSFER)
        reply = await self._exchange(client, client.method(self._object(ref), ref.attribute, param, DataType.ARRAY),
                                     _METHOD)
        if reply.error:
            raise AccessError(f"key transfer refused ({gurux_compat.AccessResult(reply.error).name}); "
                              "the old keys stay in use", s.label)
        # From the meter's reply on, only the new keys open an association.
        await self._teardown(release=False, close_link=False)
        self.settings = replace(s, security=replace(sec, block_cipher_key=Secret(bck), authentication_key=Secret(ak)))
        try:
            await self._ensure_associated()
        except DlmsError as exc:
            raise KeysChangedButUnusable(f"the meter accepted the new keys but an association with them failed "
                                         f"({exc}); the old keys no longer work", s.label) from exc
        log.info("%s: global keys changed; associated with the new keys", s.label)

    async def _guard(self, coro: Awaitable[T]) -> T:
        """Run one operation; any failure leaves the session ready to rebuild on next use."""
        try:
            return await coro
        except InvalidValue:
            raise  # refused before anything was sent: the association is untouched
        except AccessError as exc:
            # The meter understood and refused this one operation: the association is fine.
            self.stats.record_error(exc.kind, str(exc))
            raise
        except DlmsError as exc:
            self.stats.record_error(exc.kind, str(exc))
            # An abandoned reply may still be on its way (a stream, a meter that pushes blocks).
            await self._teardown(release=False,
                                 close_link=isinstance(exc, (LinkClosed, ReplyTimeout, ReplyTooLarge)))
            raise
        except asyncio.CancelledError:
            await self._teardown(release=False, close_link=True)
            raise
        except Exception as exc:  # noqa: BLE001 - gurux raises bare Exception; callers get our kinds only
            err = ProtocolError(f"unexpected reply: {exc.__class__.__name__}: {exc}", self.settings.label)
            self.stats.record_error(err.kind, str(err))
            await self._teardown(release=False, close_link=True)
            raise err from exc

    # -- writes and methods -------------------------------------------------------------------

    async def _set(self, ref: AttributeRef, value: Any, type_name: str | None) -> None:
        await self._ensure_associated()
        client = self._associated_client()
        self._next_invoke_id(client)
        try:
            dtype = data_type(type_name) if type_name else _guess_type(value)
            if dtype == DataType.OCTET_STRING and isinstance(value, str):
                value = value.encode()
            if client.useLogicalNameReferencing:
                frames = gurux_compat.write_request(client, ref.obis, ref.class_id, ref.attribute, value, dtype)
            else:
                _GXCommon.setData(client.settings, GXByteBuffer(), dtype, value)  # refuse a bad value first
        except Exception as exc:  # noqa: BLE001 - gurux fails with anything on a value of the wrong kind
            raise InvalidValue(f"write {ref}: value {repr(value)[:60]} is not a valid "
                               f"{type_name or 'value'}: {exc}", self.settings.label) from exc
        if not client.useLogicalNameReferencing:
            await self._write_sn(client, await self._sn_name(client, ref), value, dtype, f"write {ref}")
            return
        reply = await self._exchange(client, frames, _SET)
        if reply.error:
            raise AccessError(f"write {ref} refused: {gurux_compat.AccessResult(reply.error).name}",
                              self.settings.label)

    async def _action(self, ref: AttributeRef, value: Any, type_name: str | None) -> Any:
        await self._ensure_associated()
        client = self._associated_client()
        if not client.useLogicalNameReferencing:
            # SN has no ACTION service: a method is invoked by writing its parameter to its name.
            try:
                dtype = data_type(type_name)
                _GXCommon.setData(client.settings, GXByteBuffer(), dtype, value)
            except Exception as exc:  # noqa: BLE001 - as below: the parameter, not the meter
                raise InvalidValue(f"method {ref}: parameter {repr(value)[:60]} is not a valid {type_name}: {exc}",
                                   self.settings.label) from exc
            await self._write_sn(client, await self._sn_name(client, ref, method=True), value, dtype,
                                 f"method {ref}")
            return None
        self._next_invoke_id(client)
        try:
            frames = client.method(self._object(ref), ref.attribute, value, data_type(type_name))
        except Exception as exc:  # noqa: BLE001 - as in _set: the parameter, not the meter
            raise InvalidValue(f"method {ref}: parameter {repr(value)[:60]} is not a valid {type_name}: {exc}",
                               self.settings.label) from exc
        reply = await self._exchange(client, frames, _METHOD)
        if reply.error:
            raise AccessError(f"method {ref} refused: {gurux_compat.AccessResult(reply.error).name}",
                              self.settings.label)
        return plain(reply.value)


def _guess_type(value: Any) -> DataType:
    if isinstance(value, bool):
        return DataType.BOOLEAN
    if isinstance(value, int):
        return DataType.INT32 if value < 0 else DataType.UINT32
    if isinstance(value, float):
        return DataType.FLOAT64
    if isinstance(value, (bytes, bytearray)):
        return DataType.OCTET_STRING
    if isinstance(value, str):
        return DataType.STRING
    raise ValueError(f"cannot infer a DLMS type for {type(value).__name__}; give one")
