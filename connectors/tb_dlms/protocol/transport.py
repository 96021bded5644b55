"""TCP links to meters, shared by every meter behind the same serial server.

A serial server (RS-485 to TCP) exposes a bus of meters on one host:port; the meters are told apart
by their HDLC server address and only one may talk at a time. So one TCP connection serves all of
them: each session registers its address and gets a mailbox for its frames, and takes the link's
*turn* for one exchange at a time. ``asyncio.Lock`` wakes waiters first-in first-out, which makes
the turns fair: a meter with a long block transfer cannot starve its neighbours between requests.

A dead meter must not cost its neighbours: a turn lasts one attempt (a resend takes a new turn, so
the neighbours queued meanwhile go first), and an address that has not answered on the link (never,
or not since its last exchange ran out of resends) is probed once, briefly (``first_contact``).
Measured in bench/bench_dead_neighbour.py: with turns held across resends, one absent meter cost
its neighbours 20 % of their polls (issue 11, item 21).

WRAPPER meters get a connection each (the profile gives each TCP connection its own association).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Union

from .errors import ConnectError, LinkClosed
from .framing import HdlcFrame, HdlcFrameReader, WrapperFrame, WrapperFrameReader
from .settings import Interface, MeterSettings

log = logging.getLogger(__name__)

Frame = Union[HdlcFrame, WrapperFrame]
_READ_CHUNK = 4096


class _Closed:
    """Put in a mailbox when the link dies, so a waiting session wakes up at once."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


@dataclass(eq=False)
class Mailbox:
    """Frames addressed to one meter, plus its share of the link counters."""

    address: int
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    bytes_received: int = 0

    def drain(self) -> int:
        """Drop frames nobody waits for any more (late replies); returns how many."""
        n = 0
        while True:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                return n
            if isinstance(item, _Closed):
                # Keep the death notice for the next reader.
                self.queue.put_nowait(item)
                return n
            n += 1


class Link:
    """One TCP connection to a host:port, carrying the frames of one or more meters."""

    def __init__(self, host: str, port: int, interface: Interface, connect_timeout: float) -> None:
        self.host = host
        self.port = port
        self.interface = interface
        self.connect_timeout = connect_timeout
        self.turn = asyncio.Lock()
        self._mailboxes: dict[int, Mailbox] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self._opening: asyncio.Lock = asyncio.Lock()
        self._framer: HdlcFrameReader | WrapperFrameReader = (
            HdlcFrameReader() if interface is Interface.HDLC else WrapperFrameReader()
        )
        self.closed_reason: str | None = None
        self.unrouted_frames = 0
        #: Addresses that answered on this link and have not since let an exchange run out of resends.
        self._confirmed: set[int] = set()

    @property
    def key(self) -> tuple:
        """What the pool shares this link by: one link per endpoint."""
        return (self.host, self.port)

    @property
    def is_open(self) -> bool:
        return self._writer is not None and self.closed_reason is None

    @property
    def discarded_bytes(self) -> int:
        return self._framer.discarded_bytes

    def drop_partial(self) -> int:
        """Forget a frame begun but never finished; returns the bytes dropped.

        WRAPPER frames carry no checksum: the head of a reply cut off before our timeout would
        otherwise take the start of the next reply as its tail, and decode as a plausible answer.
        """
        n = self._framer.pending
        if n:
            self._framer.reset()
        return n

    def mailbox(self, address: int) -> Mailbox:
        box = self._mailboxes.get(address)
        if box is None:
            box = self._mailboxes[address] = Mailbox(address)
        return box

    def forget(self, address: int) -> None:
        self._mailboxes.pop(address, None)

    def first_contact(self, address: int) -> bool:
        """True while ``address`` has not answered here: a wrong or absent address gives silence,
        so the probe is short and not resent (field note: send nothing to an unconfirmed address)."""
        return address not in self._confirmed

    def unconfirm(self, address: int) -> None:
        """An exchange with ``address`` ran out of resends: probe it briefly again next time."""
        self._confirmed.discard(address)

    @property
    def users(self) -> int:
        return len(self._mailboxes)

    async def open(self) -> None:
        async with self._opening:
            if self.is_open:
                return
            await self._close_transport()
            self._framer.reset()
            try:
                self._reader, self._writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.connect_timeout
                )
            except asyncio.TimeoutError as exc:
                raise ConnectError(
                    f"no TCP connection to {self.host}:{self.port} within {self.connect_timeout:g} s"
                ) from exc
            except OSError as exc:
                raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from exc
            self.closed_reason = None
            # Stale death notices from the previous connection must not kill the new one.
            for box in self._mailboxes.values():
                box.drain()
                _drop_closed(box)
            self._task = asyncio.create_task(self._read_loop(), name=f"link {self.host}:{self.port}")

    async def send(self, data: bytes) -> None:
        if not self.is_open:
            raise LinkClosed(self.closed_reason or "link not open")
        assert self._writer is not None
        self._writer.write(data)
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self._mark_closed(f"send failed: {exc}")
            raise LinkClosed(f"connection to {self.host}:{self.port} lost: {exc}") from exc

    async def _read_loop(self) -> None:
        assert self._reader is not None
        reason = "closed by meter"
        try:
            while True:
                chunk = await self._reader.read(_READ_CHUNK)
                if not chunk:
                    break
                for frame in self._framer.feed(chunk):
                    self._route(frame, len(frame.raw))
        except (ConnectionError, OSError) as exc:
            reason = f"connection reset: {exc}"
        except asyncio.CancelledError:
            reason = "closed"
            raise
        finally:
            self._mark_closed(reason)

    def _route(self, frame: Frame, size: int) -> None:
        if isinstance(frame, HdlcFrame):
            box = self._mailboxes.get(frame.source)
        else:
            # A WRAPPER connection belongs to one association; the wPort is informative.
            box = self._mailboxes.get(frame.source) or (
                next(iter(self._mailboxes.values())) if len(self._mailboxes) == 1 else None
            )
        if box is None:
            self.unrouted_frames += 1
            return
        box.bytes_received += size
        self._confirmed.add(box.address)
        box.queue.put_nowait(frame)

    def _mark_closed(self, reason: str) -> None:
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        for box in self._mailboxes.values():
            box.queue.put_nowait(_Closed(reason))
        if self._writer is not None:
            self._writer.close()

    async def _close_transport(self) -> None:
        task, self._task = self._task, None
        writer, self._writer = self._writer, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def close(self) -> None:
        self._mark_closed("closed")
        await self._close_transport()


def _drop_closed(box: Mailbox) -> None:
    keep = []
    while not box.queue.empty():
        item = box.queue.get_nowait()
        if not isinstance(item, _Closed):
            keep.append(item)
    for item in keep:
        box.queue.put_nowait(item)


class LinkPool:
    """Hands out links: one shared link per HDLC host:port, one link per WRAPPER meter."""

    def __init__(self) -> None:
        self._shared: dict[tuple, Link] = {}

    def acquire(self, settings: MeterSettings) -> tuple[Link, Mailbox]:
        if settings.interface is Interface.HDLC:
            key = ("serial", settings.serial.port) if settings.serial is not None else (settings.host, settings.port)
            link = self._shared.get(key)
            if link is None:
                link = self._shared[key] = self._new_shared(settings)
            if settings.server_address in link._mailboxes:
                raise ValueError(
                    f"{settings.label}: HDLC server address {settings.server_address} is already "
                    f"used by another meter on {settings.endpoint}"
                )
        else:
            link = Link(settings.host, settings.port, settings.interface, settings.connect_timeout)
        return link, link.mailbox(settings.server_address)

    @staticmethod
    def _new_shared(settings: MeterSettings) -> Link:
        if settings.serial is not None:
            from .serial_link import SerialLink  # pyserial is imported only where a port is configured

            return SerialLink(settings.serial, settings.connect_timeout)
        return Link(settings.host, settings.port, settings.interface, settings.connect_timeout)

    async def release(self, link: Link, address: int) -> None:
        link.forget(address)
        if link.users == 0:
            self._shared.pop(link.key, None)
            await link.close()


def is_closed_notice(item: object) -> str | None:
    return item.reason if isinstance(item, _Closed) else None
