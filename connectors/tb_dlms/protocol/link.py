"""The seam under the session: what a line to one or more meters must offer, whatever carries it.

A session never opens sockets. It asks a ``LinkProvider`` for the link to its meter's endpoint and a
``Mailbox`` for its address, then talks only to the ``Link`` protocol: open, send, frames in (the
mailbox), close, and the bus turn-taking a shared line needs. So a TCP client link (today,
``transport.TcpClientLink``), a serial port (issue 13), a connection a meter opened to us (issue 14)
or UDP plug in under the session without touching it: each is a ``Link`` and a provider that hands
it out per endpoint.

Why the turn and the address bookkeeping belong to the link, not the session: only the link knows
who shares it. A serial bus or a serial server carries one exchange at a time for every meter on
it (field notes), and whether an address has answered on this line decides how long its first
probe may hold the line (``first_contact``, issue 11 item 21).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from .framing import HdlcFrame, WrapperFrame
from .settings import MeterSettings

Frame = HdlcFrame | WrapperFrame


class ClosedNotice:
    """Put in a mailbox when the link dies, so a waiting session wakes up at once."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


#: What a mailbox holds: a frame for its address, or the notice that the link died.
MailboxItem = HdlcFrame | WrapperFrame | ClosedNotice


@dataclass(eq=False)
class Mailbox:
    """Frames addressed to one meter, plus its share of the link counters."""

    address: int
    queue: asyncio.Queue[MailboxItem] = field(default_factory=asyncio.Queue)
    bytes_received: int = 0

    def drain(self) -> int:
        """Drop frames nobody waits for any more (late replies); returns how many."""
        n = 0
        while True:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                return n
            if isinstance(item, ClosedNotice):
                # Keep the death notice for the next reader.
                self.queue.put_nowait(item)
                return n
            n += 1

    def deliver(self, frame: Frame, size: int) -> None:
        self.bytes_received += size
        self.queue.put_nowait(frame)

    def notify_closed(self, reason: str) -> None:
        self.queue.put_nowait(ClosedNotice(reason))

    def drop_closed(self) -> None:
        """Forget death notices of a previous connection, keeping any frame."""
        keep = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if not isinstance(item, ClosedNotice):
                keep.append(item)
        for item in keep:
            self.queue.put_nowait(item)


class Link(Protocol):
    """One line carrying the frames of one or more meters (told apart by server address).

    Frames in: the link routes each complete frame to the ``Mailbox`` of its source address; when
    the line dies, every mailbox gets a ``ClosedNotice``. Frames out: ``send``,
    inside ``turn``. Implemented by ``transport.TcpClientLink``.
    """

    #: Held for one attempt of one exchange: FIFO, so a meter with a long transfer cannot starve
    #: its neighbours, and a resend queues behind those that waited meanwhile.
    turn: asyncio.Lock

    @property
    def is_open(self) -> bool: ...

    @property
    def users(self) -> int:
        """How many addresses hold a mailbox here (the provider closes the link at zero)."""
        ...

    @property
    def discarded_bytes(self) -> int:
        """Bytes the framer threw away (noise, frames cut off) since the link was made."""
        ...

    async def open(self) -> None:
        """Open the line if it is not (idempotent; concurrent callers share one attempt).
        Raises ConnectError."""

    async def send(self, data: bytes) -> None:
        """Write one frame. Raises LinkClosed."""

    def mailbox(self, address: int) -> Mailbox:
        """The mailbox of ``address`` (made on first use)."""
        ...

    def forget(self, address: int) -> None: ...

    def drop_partial(self) -> int:
        """Forget a frame begun but not finished; returns the bytes dropped (done before a send)."""
        ...

    def first_contact(self, address: int) -> bool:
        """True while ``address`` has not answered on this link: probe it once, briefly."""
        ...

    def unconfirm(self, address: int) -> None:
        """An exchange with ``address`` ran out of resends: probe it briefly again next time."""

    async def close(self) -> None:
        """Close the line; waiting sessions wake with LinkClosed. Never raises."""


class LinkProvider(Protocol):
    """Hands out the link for a meter's endpoint (shared where the line is shared) and takes it back."""

    def acquire(self, settings: MeterSettings) -> tuple[Link, Mailbox]:
        """The link to ``settings``' endpoint and the mailbox of its server address.
        Raises ValueError when another meter already holds that address on a shared line."""
        ...

    async def release(self, link: Link, address: int) -> None:
        """Give the address back; the last user's release closes the link."""
