"""The link of a meter that calls in: a TCP connection the meter opened to one of our listeners.

Cellular meters sit behind the operator's NAT, so nobody can connect to them; they connect to us.
``InboundLink`` is a ``link.Link`` (its mailboxes, turn and routing are ``transport.Routing``'s), so
a ``MeterSession`` runs over it unchanged. It is not a ``StreamLink``: a stream link owns its
stream from ``open()`` on, while this connection is read from the moment it is accepted (to
identify the meter, to catch pushes and hang-ups) and is handed from the identifying link to the
device's. What differs is who owns the connection: the link lives as long as the device's
configuration, and the listener attaches each connection the meter opens. ``open()`` cannot dial;
it waits (``wait_s``, 0 by default) for the meter to call in and otherwise fails with "meter not
connected". A second connection replaces the first (the meter rebooted): never two sessions at once.

A push (DataNotification) may arrive at any time on the connection, also in the middle of an
exchange: it is handed to ``on_push`` and never reaches a session's mailbox.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Callable

from . import push
from .errors import ConnectError, LinkClosed
from .framing import HdlcFrame, HdlcFrameReader, WrapperFrameReader
from .link import Frame
from .settings import Interface
from .transport import Routing

log = logging.getLogger(__name__)

_READ_CHUNK = 4096
#: Called with (link, APDU bytes) for every push; runs on the loop, must not block.
PushHandler = Callable[["InboundLink", bytes], None]


class Connection:
    """One accepted TCP connection: its bytes, framer and reader task, routed to the link it serves."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, interface: Interface,
                 listener: str = "") -> None:
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "?")
        #: The address the meter connects from (matched against a polled meter's host for its pushes).
        self.peer_host: str | None = str(peer[0]) if isinstance(peer, tuple) else None
        self.listener = listener
        self.framer: HdlcFrameReader | WrapperFrameReader = (
            HdlcFrameReader() if interface is Interface.HDLC else WrapperFrameReader())
        self.link: InboundLink | None = None
        self.closed_reason: str | None = None
        self.opened_at = self.last_rx = time.monotonic()
        self.bytes_received = 0
        self.closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._read_loop(), name=f"inbound {self.peer}")

    async def _read_loop(self) -> None:
        reason = "closed by meter"
        try:
            while True:
                chunk = await self.reader.read(_READ_CHUNK)
                if not chunk:
                    break
                self.last_rx = time.monotonic()
                self.bytes_received += len(chunk)
                for frame in self.framer.feed(chunk):
                    if self.link is not None:
                        self.link.frame_in(frame)
        except (ConnectionError, OSError) as exc:
            reason = f"connection reset: {exc}"
        except asyncio.CancelledError:
            reason = "closed"
        finally:
            self.close(reason)

    def close(self, reason: str) -> None:
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        self.writer.close()
        if self.link is not None:
            self.link._lost(self, reason)
        self.closed.set()
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()


class InboundLink(Routing):
    """A meter's link over whatever connection it opened last (see the module docstring)."""

    def __init__(self, name: str, interface: Interface, wait_s: float = 0.0,
                 on_push: PushHandler | None = None) -> None:
        super().__init__()
        self.name = name
        self.host, self.port = "inbound", 0
        self.interface = interface
        self.wait_s = wait_s
        self.on_push = on_push
        #: Told (link, connected) when a connection is attached or lost.
        self.on_presence: Callable[["InboundLink", bool], None] | None = None
        self._conn: Connection | None = None
        self._attached = asyncio.Event()
        self.closed_reason: str | None = "meter not connected"
        self._discarded_before = 0
        self.connections = 0
        self.replaced = 0

    # -- the Link interface -------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._conn is not None and self._conn.closed_reason is None

    @property
    def peer(self) -> str | None:
        return self._conn.peer if self._conn is not None else None

    @property
    def discarded_bytes(self) -> int:
        return self._discarded_before + (self._conn.framer.discarded_bytes if self._conn is not None else 0)

    def drop_partial(self) -> int:
        conn = self._conn
        n = conn.framer.pending if conn is not None else 0
        if n and conn is not None:
            conn.framer.reset()
        return n

    async def open(self) -> None:
        """Nothing to dial: wait for the meter to call in, at most ``wait_s``."""
        if self.is_open:
            return
        if self.wait_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.wait_s):
                    await self._attached.wait()
        if not self.is_open:
            waited = f" (waited {self.wait_s:g} s for it to call in)" if self.wait_s > 0 else ""
            raise ConnectError(f"meter not connected{waited}")

    async def send(self, data: bytes) -> None:
        conn = self._conn
        if conn is None or conn.closed_reason is not None:
            raise LinkClosed(self.closed_reason or "meter not connected")
        conn.writer.write(data)
        try:
            await conn.writer.drain()
        except (ConnectionError, OSError) as exc:
            conn.close(f"send failed: {exc}")
            raise LinkClosed(f"connection from {conn.peer} lost: {exc}") from exc

    async def close(self) -> None:
        """Close the meter's connection (the session gave up on it); the meter has to call again."""
        conn = self._conn
        if conn is not None:
            conn.close("closed")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.writer.wait_closed(), 1.0)

    # -- the listener's side ------------------------------------------------------------------

    def attach(self, conn: Connection) -> None:
        """Serve ``conn`` from now on; an older connection is closed (the meter rebooted)."""
        old = self._conn
        if old is not None and old is not conn and old.closed_reason is None:
            self.replaced += 1
            self._conn = None  # not reported as lost: the meter is still there
            old.link = None
            old.close(f"replaced by a new connection from {conn.peer}")
            self._orphan("the meter opened a new connection")
        if old is not None:
            self._discarded_before += old.framer.discarded_bytes
        previous = conn.link
        if previous is not None and previous is not self:
            previous._conn = None  # handed over, not lost
        conn.link = self
        self._conn = conn
        self.connections += 1
        self.closed_reason = None
        self._confirmed.clear()
        self._attached.set()
        if self.on_presence is not None:
            self.on_presence(self, True)  # also for a replacement: the old session's association is void

    def _lost(self, conn: Connection, reason: str) -> None:
        if conn is not self._conn:
            return
        self._discarded_before += conn.framer.discarded_bytes
        self._conn = None
        self.closed_reason = f"meter not connected ({reason})"
        self._attached.clear()
        self._orphan(self.closed_reason)
        if self.on_presence is not None:
            self.on_presence(self, False)

    def _orphan(self, reason: str) -> None:
        """The connection the sessions' associations lived on is gone: wake them with the reason and
        let go of their mailboxes. A session left over (idle when it happened) fails its next exchange
        on its dead mailbox instead of talking, unassociated, over the meter's next connection; and,
        holding no address here, it does not close that connection when it is dropped."""
        self._notify_closed(reason)
        self._mailboxes.clear()
        self._confirmed.clear()

    def frame_in(self, frame: Frame) -> None:
        """A frame from the connection: a push goes to ``on_push``, anything else to the session."""
        apdu = push.hdlc_apdu(_hdlc_info(frame)) if isinstance(frame, HdlcFrame) else frame.raw[8:]
        if push.is_push(apdu):
            if self.on_push is not None:
                self.on_push(self, apdu)
            return
        self._route(frame, len(frame.raw))

    def _route(self, frame: Frame, size: int) -> None:
        # One meter per connection: whatever it sends is the reply of its one session (the HDLC
        # source address of the identifying read and of the device's own client may differ).
        box = next(iter(self._mailboxes.values())) if len(self._mailboxes) == 1 else None
        if box is None:
            super()._route(frame, size)
            return
        self._confirmed.add(box.address)
        box.deliver(frame, size)


def _hdlc_info(frame: HdlcFrame) -> bytes:
    """Information field of an unsegmented HDLC frame (b"" when it has none)."""
    raw = frame.raw
    i = 3
    while i < len(raw) and not raw[i] & 1:
        i += 1
    i += 1
    while i < len(raw) and not raw[i] & 1:
        i += 1
    start = i + 2 + 2  # control byte, then the header check sequence
    return raw[start:-3] if len(raw) > start + 3 else b""
