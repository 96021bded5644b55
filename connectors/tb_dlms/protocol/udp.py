"""UDP links: WRAPPER over UDP (IEC 62056-47), for NB-IoT meters that speak only UDP.

``UdpLink`` is a ``link.Link``, so a ``MeterSession`` polls over it with the same deadlines and
resends: UDP loses datagrams where TCP would retransmit, and the session's bounded resends of the
same frame are exactly what a lost datagram needs. Each datagram carries one WRAPPER frame;
``open()`` only binds a socket (nothing is exchanged), so a meter that is not there shows as a
reply timeout, as on a serial bus. Not a ``StreamLink``: there is no byte stream to frame across
reads, a partial frame is never completed by the next datagram.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from .errors import ConnectError, LinkClosed
from .framing import WrapperFrameReader
from .settings import Interface, MeterSettings
from .transport import Routing

log = logging.getLogger(__name__)


class UdpLink(Routing):
    """One UDP socket to host:port, for one WRAPPER meter."""

    def __init__(self, host: str, port: int, interface: Interface = Interface.WRAPPER,
                 connect_timeout: float = 10.0) -> None:
        if interface is not Interface.WRAPPER:
            raise ValueError("UDP carries the WRAPPER profile only (IEC 62056-47)")
        super().__init__()
        self.host, self.port = host, port
        self.interface = interface
        self.connect_timeout = connect_timeout
        self._transport: asyncio.DatagramTransport | None = None
        self._framer = WrapperFrameReader()
        self.closed_reason: str | None = None

    @classmethod
    def for_meter(cls, settings: MeterSettings) -> UdpLink:
        return cls(settings.host, settings.port, settings.interface, settings.connect_timeout)

    @property
    def name(self) -> str:
        return f"udp {self.host}:{self.port}"

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

    async def open(self) -> None:
        if self.is_open:
            return
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await asyncio.wait_for(loop.create_datagram_endpoint(
                lambda: _Datagrams(self), remote_addr=(self.host, self.port)), self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise ConnectError(f"cannot open UDP to {self.host}:{self.port}: {exc}") from exc
        self.closed_reason = None
        self._framer.reset()
        for box in self._mailboxes.values():
            box.drain()
            box.drop_closed()

    async def send(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or self.closed_reason is not None:
            raise LinkClosed(self.closed_reason or "link not open")
        transport.sendto(data)

    def _datagram(self, data: bytes) -> None:
        # One frame a datagram: a partial one is never completed by the next datagram.
        self._framer.reset()
        for frame in self._framer.feed(data):
            self._route(frame, len(frame.raw))

    async def close(self) -> None:
        if self.closed_reason is None:
            self.closed_reason = "closed"
            self._notify_closed("closed")
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, link: UdpLink) -> None:
        self.link = link

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.link._datagram(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: the meter is not there now; the exchange times out and resends.
        log.debug("udp %s:%d: %s", self.link.host, self.link.port, exc)
