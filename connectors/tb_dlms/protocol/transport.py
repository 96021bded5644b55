"""TCP client links to meters (the ``link.Link`` seam's one implementation today), shared by
every meter behind the same serial server.

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

``StreamLink`` is everything but the opening of the byte stream (framing, routing to mailboxes,
turns, death notices): a serial port or an accepted connection gives the same asyncio streams, so
it only needs its own ``_connect``. ``LinkPool`` keys links by endpoint (``Endpoint``).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Callable, NamedTuple, Protocol

from .errors import ConnectError, LinkClosed
from .framing import HdlcFrame, HdlcFrameReader, WrapperFrameReader
from .limits import ConnectionLimits
from .link import Frame, Link, Mailbox
from .settings import Interface, MeterSettings

log = logging.getLogger(__name__)

__all__ = ["Endpoint", "LinkPool", "Mailbox", "PooledLink", "Routing", "StreamLink", "TcpClientLink", "endpoint_of"]

_READ_CHUNK = 4096


class Routing:
    """The per-address half of a link, whatever carries its bytes: the turn, a mailbox per server
    address, which addresses answered, frames routed to their mailbox, death notices to all.

    ``StreamLink`` (byte streams), ``udp.UdpLink`` (datagrams) and ``inbound.InboundLink`` (a
    connection a meter opened to us) share it.
    """

    def __init__(self) -> None:
        self.turn = asyncio.Lock()
        self._mailboxes: dict[int, Mailbox] = {}
        self.unrouted_frames = 0
        #: Addresses that answered on this link and have not since let an exchange run out of resends.
        self._confirmed: set[int] = set()

    def mailbox(self, address: int) -> Mailbox:
        box = self._mailboxes.get(address)
        if box is None:
            box = self._mailboxes[address] = Mailbox(address)
        return box

    def holds(self, address: int) -> bool:
        return address in self._mailboxes

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
        self._confirmed.add(box.address)
        box.deliver(frame, size)

    def _notify_closed(self, reason: str) -> None:
        for box in self._mailboxes.values():
            box.notify_closed(reason)


class StreamLink(Routing):
    """One byte stream carrying the frames of one or more meters; subclasses say how it opens."""

    def __init__(self, interface: Interface) -> None:
        super().__init__()
        self.interface = interface
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._opening: asyncio.Lock = asyncio.Lock()
        self._framer: HdlcFrameReader | WrapperFrameReader = (
            HdlcFrameReader() if interface is Interface.HDLC else WrapperFrameReader()
        )
        self.closed_reason: str | None = None

    @property
    def name(self) -> str:
        """Where the stream goes, for messages and task names."""
        raise NotImplementedError

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open the byte stream; raises ConnectError naming the endpoint."""
        raise NotImplementedError

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

    async def open(self) -> None:
        async with self._opening:
            if self.is_open:
                return
            await self._close_transport()
            self._framer.reset()
            self._reader, self._writer = await self._connect()
            self.closed_reason = None
            # Stale death notices from the previous connection must not kill the new one.
            for box in self._mailboxes.values():
                box.drain()
                box.drop_closed()
            self._task = asyncio.create_task(self._read_loop(), name=f"link {self.name}")

    async def send(self, data: bytes) -> None:
        if not self.is_open:
            raise LinkClosed(self.closed_reason or "link not open")
        assert self._writer is not None
        self._writer.write(data)
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self._mark_closed(f"send failed: {exc}")
            raise LinkClosed(f"connection to {self.name} lost: {exc}") from exc

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

    def _mark_closed(self, reason: str) -> None:
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        self._notify_closed(reason)
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


class TcpClientLink(StreamLink):
    """A TCP connection we open to a host:port (a WRAPPER meter, or a serial server's bus).

    With ``limits`` (the connector's ``maxConnections``/``maxNewConnectionsPerS``), opening waits
    for a slot and the rate first, and the slot is held while the connection is open.
    """

    def __init__(self, host: str, port: int, interface: Interface, connect_timeout: float,
                 limits: ConnectionLimits | None = None) -> None:
        super().__init__(interface)
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.limits = limits
        self._holds_slot = False

    @classmethod
    def for_meter(cls, settings: MeterSettings, limits: ConnectionLimits | None = None) -> TcpClientLink:
        return cls(settings.host, settings.port, settings.interface, settings.connect_timeout, limits)

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.limits is not None and not self._holds_slot:
            await self.limits.admit()  # queued fairly; the poll's deadline bounds the wait
            self._holds_slot = True
        try:
            return await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.connect_timeout)
        except TimeoutError as exc:
            self._free_slot()
            raise ConnectError(
                f"no TCP connection to {self.host}:{self.port} within {self.connect_timeout:g} s"
            ) from exc
        except OSError as exc:
            self._free_slot()
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from exc
        except BaseException:
            self._free_slot()
            raise

    def _mark_closed(self, reason: str) -> None:
        super()._mark_closed(reason)
        self._free_slot()

    def _free_slot(self) -> None:
        if self._holds_slot and self.limits is not None:
            self._holds_slot = False
            self.limits.release()


class Endpoint(NamedTuple):
    """Where a link goes: the key links are shared by. ``tcp`` and ``udp``: host and port;
    ``serial``: a port of the gateway, ``host`` its path (port 0), so the meters of one RS-485 bus
    share it as those behind one serial server share their host:port. Meters that call in have no
    endpoint: their links are the listeners' (``endpoints.EndpointPool``)."""

    kind: str
    host: str
    port: int


def endpoint_of(settings: MeterSettings) -> Endpoint:
    if settings.serial is not None:
        return Endpoint("serial", settings.serial.port, 0)
    return Endpoint(settings.transport.value, settings.host, settings.port)


class PooledLink(Link, Protocol):
    """A link the pool can share: it says whether an address already has a mailbox on it."""

    def holds(self, address: int) -> bool: ...


#: Makes the link for a meter's endpoint (the first meter's settings, for a shared one).
LinkMaker = Callable[[MeterSettings], PooledLink]


class LinkPool:
    """Hands out links (the ``link.LinkProvider`` of the session): one shared link per HDLC
    endpoint (a bus), one link per WRAPPER meter. ``limits`` caps the TCP connections it dials."""

    def __init__(self, makers: dict[str, LinkMaker] | None = None, limits: ConnectionLimits | None = None) -> None:
        self.limits = limits

        def tcp(settings: MeterSettings) -> PooledLink:
            return TcpClientLink.for_meter(settings, limits)

        self._makers: dict[str, LinkMaker] = {"tcp": tcp, **(makers or {})}
        self._shared: dict[Endpoint, PooledLink] = {}

    def acquire(self, settings: MeterSettings) -> tuple[Link, Mailbox]:
        endpoint = endpoint_of(settings)
        make = self._makers.get(endpoint.kind)
        if make is None:
            raise ValueError(f"{settings.label}: this link pool does not reach {endpoint.kind} endpoints "
                             f"({settings.endpoint}); use protocol.pools.link_pool()")
        if settings.interface is Interface.HDLC:
            link = self._shared.get(endpoint)
            if link is None:
                link = self._shared[endpoint] = make(settings)
            if link.holds(settings.server_address):
                raise ValueError(
                    f"{settings.label}: HDLC server address {settings.server_address} is already "
                    f"used by another meter on {settings.endpoint}"
                )
        else:
            link = make(settings)
        return link, link.mailbox(settings.server_address)

    async def release(self, link: Link, address: int) -> None:
        link.forget(address)
        if link.users == 0:
            for endpoint, shared in list(self._shared.items()):
                if shared is link:
                    del self._shared[endpoint]
            await link.close()
