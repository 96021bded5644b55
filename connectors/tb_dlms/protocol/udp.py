"""UDP links: WRAPPER over UDP (IEC 62056-47), for NB-IoT meters that speak only UDP.

``UdpLink`` has the public methods and meaning of ``transport.Link``, so a ``MeterSession`` polls over
it with the same deadlines and resends: UDP loses datagrams where TCP would retransmit, and the
session's bounded resends of the same frame are exactly what a lost datagram needs. Each datagram
carries one WRAPPER frame; ``open()`` only binds a socket (nothing is exchanged), so a meter that
is not there shows as a reply timeout, as on a serial bus.
"""
from __future__ import annotations

import asyncio
import logging

from .errors import ConnectError, LinkClosed
from .framing import WrapperFrameReader
from .settings import Interface
from .transport import Mailbox, _Closed

log = logging.getLogger(__name__)


class UdpLink:
    """One UDP socket to host:port, for one WRAPPER meter."""

    def __init__(self, host: str, port: int, interface: Interface = Interface.WRAPPER,
                 connect_timeout: float = 10.0) -> None:
        if interface is not Interface.WRAPPER:
            raise ValueError("UDP carries the WRAPPER profile only (IEC 62056-47)")
        self.host, self.port = host, port
        self.interface = interface
        self.connect_timeout = connect_timeout
        self.turn = asyncio.Lock()
        self._mailboxes: dict[int, Mailbox] = {}
        self._confirmed: set[int] = set()
        self._transport: asyncio.DatagramTransport | None = None
        self._framer = WrapperFrameReader()
        self.closed_reason: str | None = None
        self.unrouted_frames = 0

    @property
    def is_open(self) -> bool:
        return self._transport is not None and self.closed_reason is None

    @property
    def discarded_bytes(self) -> int:
        return self._framer.discarded_bytes

    def drop_partial(self) -> int:
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
        return address not in self._confirmed

    def unconfirm(self, address: int) -> None:
        self._confirmed.discard(address)

    @property
    def users(self) -> int:
        return len(self._mailboxes)

    async def open(self) -> None:
        if self.is_open:
            return
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await asyncio.wait_for(loop.create_datagram_endpoint(
                lambda: _Datagrams(self), remote_addr=(self.host, self.port)), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ConnectError(f"cannot open UDP to {self.host}:{self.port}: {exc}") from exc
        self.closed_reason = None
        self._framer.reset()

    async def send(self, data: bytes) -> None:
        if not self.is_open:
            raise LinkClosed(self.closed_reason or "link not open")
        self._transport.sendto(data)

    def _datagram(self, data: bytes) -> None:
        # One frame a datagram: a partial one is never completed by the next datagram.
        self._framer.reset()
        for frame in self._framer.feed(data):
            box = self._mailboxes.get(frame.source) or (
                next(iter(self._mailboxes.values())) if len(self._mailboxes) == 1 else None)
            if box is None:
                self.unrouted_frames += 1
                continue
            box.bytes_received += len(frame.raw)
            self._confirmed.add(box.address)
            box.queue.put_nowait(frame)

    async def close(self) -> None:
        if self.closed_reason is None:
            self.closed_reason = "closed"
            for box in self._mailboxes.values():
                box.queue.put_nowait(_Closed("closed"))
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, link: UdpLink) -> None:
        self.link = link

    def datagram_received(self, data: bytes, addr) -> None:
        self.link._datagram(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: the meter is not there now; the exchange times out and resends.
        log.debug("udp %s:%d: %s", self.link.host, self.link.port, exc)
