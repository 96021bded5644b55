"""Listeners for meters that call in, and the push notifications they send.

A cellular fleet has limits a polled one does not: the operator's NAT lets only the meter open a
connection; thousands reconnect together after a network outage; a meter with a broken modem
reconnects in a loop. So each listener caps the connections open at once (``max_connections``)
and the new ones a second (``max_new_per_s``); ``asyncio.Semaphore`` wakes waiters first-in
first-out, so connections beyond the cap queue fairly. Idle connections are closed, and an
identity that reconnects in a loop is refused for a doubling back-off and reported.

Identification runs an ordinary ``MeterSession`` as the public client over the connection (the
logical device name by default), then releases it (RLRQ, DISC on HDLC): meters keep the client
address of an unreleased association and ignore a different one. The connection is then attached
to the ``InboundLink`` of the device with that identity, whose own session (client, keys, polls,
profiles, RPCs) runs over it as over any link.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine, Sequence

from . import push
from .errors import DlmsError
from .inbound import Connection, InboundLink
from .limits import ConnectionLimits
from .obis import ObisCode
from .readings import AttributeRef
from .settings import Interface, ListenerSettings, MeterSettings, Transport
from .link import Link, Mailbox

log = logging.getLogger(__name__)

#: Plain pushes received on a connection before it is identified are held, at most this many.
MAX_EARLY_PUSHES = 8


@dataclass(slots=True)
class PushTarget:
    """Where the pushes of one meter go, and the keys to open them."""

    name: str
    deliver: Callable[[push.Notification, float], None]
    keys: tuple[bytes, bytes] | None = None
    deviation_utc_minus_local: bool = True
    system_title: bytes | None = None
    #: A polled meter's host: its plain pushes are matched by the address they come from.
    host: str | None = None
    failures: int = 0
    reasons_logged: set[str] = field(default_factory=set)


@dataclass
class ListenerStats:
    accepted: int = 0
    identified: int = 0
    unknown: int = 0
    unidentified: int = 0
    refused_full: int = 0
    refused_backoff: int = 0
    reconnect_loops: int = 0
    idle_closed: int = 0
    replaced: int = 0
    #: Connections from a polled meter's address, carrying its pushes.
    push_connections: int = 0
    pushes: int = 0
    bad_pushes: int = 0
    open: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _OneLink:
    """The ``LinkPool`` of the identifying session: the connection's own link, never closed by it."""

    def __init__(self, link: InboundLink) -> None:
        self.link = link

    def acquire(self, settings: MeterSettings) -> tuple[Link, Mailbox]:
        return self.link, self.link.mailbox(settings.server_address)

    async def release(self, link: Link, address: int) -> None:
        link.forget(address)


def identity_text(value: object) -> str:
    """An identity as text: octet strings compared without the trailing NULs or blanks meters pad with.

    Sessions hand octet strings over as text when printable, else as hex (values.plain): a name
    padded with NULs arrives as hex, and is turned back into its text here.
    """
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    elif isinstance(value, str) and len(value) % 2 == 0 and value and all(c in "0123456789abcdef" for c in value):
        raw = bytes.fromhex(value)
    else:
        return str(value).rstrip("\x00 ")
    raw = raw.rstrip(b"\x00 ")
    if raw and all(32 <= b < 127 for b in raw):
        return raw.decode("ascii")
    return raw.hex()


class Listener:
    """One listening socket; meters are identified and handed to the hub's links."""

    def __init__(self, settings: ListenerSettings, hub: "InboundHub") -> None:
        self.settings = settings
        self.hub = hub
        self.stats = ListenerStats()
        self.limits = ConnectionLimits(settings.max_connections, settings.max_new_per_s)
        self._server: asyncio.base_events.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._history: dict[str, collections.deque[float]] = {}
        self._backoff: dict[str, tuple[float, float]] = {}
        self.bound_port: int | None = None

    async def start(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        if s.transport is Transport.UDP:
            self._udp, _ = await loop.create_datagram_endpoint(lambda: _PushDatagrams(self),
                                                               local_addr=(s.host, s.port))
            self.bound_port = self._udp.get_extra_info("sockname")[1]
        else:
            self._server = await asyncio.start_server(self._accepted, s.host, s.port, reuse_address=True,
                                                      backlog=min(4096, max(128, s.max_connections)))
            self.bound_port = self._server.sockets[0].getsockname()[1]
            self._spawn(self._watch_idle(), "idle connections")
        log.info("listener %s: %s %s on %s:%d", s.name, s.interface.value, s.transport, s.host, self.bound_port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._udp is not None:
            self._udp.close()
        for conn in list(self._connections):
            conn.close("connector stopping")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=f"listener {self.settings.name}: {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- connections --------------------------------------------------------------------------

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = self.settings
        self.stats.accepted += 1
        if self.limits.queued >= s.max_connections:
            # The queue is as long as the listener is wide: a flood costs file descriptors, not memory.
            self.stats.refused_full += 1
            writer.close()
            return
        await self.limits.admit()
        try:
            conn = Connection(reader, writer, s.interface, s.name)
            self._connections.add(conn)
            self.stats.open += 1
            try:
                await self._serve(conn)
            finally:
                self._connections.discard(conn)
                self.stats.open -= 1
                conn.close(conn.closed_reason or "closed")
        finally:
            self.limits.release()

    async def _serve(self, conn: Connection) -> None:
        s = self.settings
        anonymous = InboundLink(f"{s.name}:{conn.peer}", s.interface)
        early: list[bytes] = []
        first_title = asyncio.get_running_loop().create_future()

        def held(_link: InboundLink, apdu: bytes) -> None:
            title = push.sender_title(apdu)
            if title is not None and not first_title.done():
                first_title.set_result(title)
            if len(early) < MAX_EARLY_PUSHES:
                early.append(apdu)

        anonymous.on_push = held
        polled = self.hub.polled_pusher(conn.peer_host)
        if polled is not None:
            # From a polled meter's address: its pushes are its device's, whether or not it identifies.
            def to_polled(_link: InboundLink, apdu: bytes) -> None:
                title = push.sender_title(apdu)
                if title is not None and not first_title.done():
                    first_title.set_result(title)  # delivered now, not held: never twice
                self.hub.push_received(None, apdu, conn.peer, conn.peer_host)

            anonymous.on_push = to_polled
        anonymous.attach(conn)
        conn.start()
        if polled is not None and not self.hub.calls_in(s.name):
            await self._pushes_only(conn, polled.name)
            return
        try:
            async with asyncio.timeout(s.identify_timeout_s):
                if s.identify_by.system_title:
                    identity = (await first_title).hex()
                else:
                    identity = await self._read_identity(anonymous, conn)
        except (TimeoutError, DlmsError, ValueError) as exc:
            if polled is not None:
                await self._pushes_only(conn, polled.name)
                return
            self.stats.unidentified += 1
            why = f"no identification within {s.identify_timeout_s:g} s" if isinstance(exc, TimeoutError) else str(exc)
            log.warning("listener %s: connection from %s not identified (%s); closed", s.name, conn.peer, why)
            return
        if conn.closed_reason is not None:
            return
        link = self.hub.link_of(s.name, identity)
        if link is None and polled is not None:
            await self._pushes_only(conn, polled.name)
            return
        if link is None:
            self.stats.unknown += 1
            self.hub.unknown_identity(s.name, identity, conn.peer)
            return
        if self._looping(identity, conn.peer):
            return
        self.stats.identified += 1
        if link.is_open:
            self.stats.replaced += 1
            log.info("listener %s: %s called again from %s; the connection from %s is replaced", s.name,
                     link.name, conn.peer, link.peer)
        log.info("listener %s: %s connected from %s (identity %r)", s.name, link.name, conn.peer, identity)
        link.attach(conn)
        for apdu in early:
            link.on_push(link, apdu) if link.on_push is not None else None
        await conn.closed.wait()
        log.info("listener %s: %s disconnected: %s", s.name, link.name, conn.closed_reason)

    async def _pushes_only(self, conn: Connection, device: str) -> None:
        """Serve a polled meter's push connection until it closes (or idles out): nothing to poll on it."""
        self.stats.push_connections += 1
        log.debug("listener %s: push connection from %s (polled meter %s)", self.settings.name, conn.peer, device)
        await conn.closed.wait()

    async def _read_identity(self, anonymous: InboundLink, conn: Connection) -> str:
        from .session import MeterSession  # gurux is loaded by the first meter that calls in

        s, by = self.settings, self.settings.identify_by
        settings = MeterSettings(host=conn.peer.rsplit(":", 1)[0], port=0, interface=s.interface,
                                 client_address=by.client_address, logical_address=by.server_address,
                                 timeout=s.reply_timeout_s, retries=s.retries,
                                 name=f"listener {s.name}, {conn.peer}")
        session = MeterSession(settings, links=_OneLink(anonymous))
        try:
            reading = await session.get(AttributeRef(ObisCode.parse(by.obis), by.class_id, by.attribute))
        finally:
            await session.close()  # RLRQ (and DISC on HDLC) before the device's own client associates
        if not reading.ok:
            raise ValueError(f"identity {by.obis} not read: {reading.error}")
        return identity_text(reading.value)

    def _looping(self, identity: str, peer: str) -> bool:
        """True (and the connection refused) while an identity that reconnects in a loop is backed off."""
        s, now = self.settings, time.monotonic()
        until, backoff = self._backoff.get(identity, (0.0, 0.0))
        if now < until:
            self.stats.refused_backoff += 1
            log.debug("listener %s: %s from %s refused: backed off for reconnecting in a loop", s.name, identity, peer)
            return True
        times = self._history.setdefault(identity, collections.deque(maxlen=s.reconnect_limit + 1))
        times.append(now)
        if len(times) > s.reconnect_limit and now - times[0] < s.reconnect_window_s:
            backoff = min(3600.0, backoff * 2 if backoff else s.reconnect_backoff_s)
            self._backoff[identity] = (now + backoff, backoff)
            times.clear()
            self.stats.reconnect_loops += 1
            self.stats.refused_backoff += 1
            log.warning("listener %s: %s reconnects in a loop (%d connections within %g s, the last from %s); "
                        "its connections are refused for %g s", s.name, identity, s.reconnect_limit + 1,
                        s.reconnect_window_s, peer, backoff)
            return True
        return False

    async def _watch_idle(self) -> None:
        limit = self.settings.idle_timeout_s
        while True:
            await asyncio.sleep(min(5.0, limit / 4))
            now = time.monotonic()
            for conn in list(self._connections):
                if conn.link is not None and conn.link.turn.locked():
                    continue  # an exchange in flight has its own deadline
                if now - conn.last_rx > limit:
                    self.stats.idle_closed += 1
                    conn.close(f"idle for {limit:g} s")

    # -- pushes over UDP ----------------------------------------------------------------------

    def datagram(self, data: bytes, peer: tuple[str, int]) -> None:
        if len(data) < 8 or data[:2] != b"\x00\x01":
            self.hub.bad_push(None, f"{self.settings.name}:{peer}", push.PushError("not a WRAPPER datagram"))
            return
        self.hub.push_received(None, data[8:], f"{self.settings.name} (udp {peer[0]}:{peer[1]})", peer[0])


class _PushDatagrams(asyncio.DatagramProtocol):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.listener.datagram(data, addr)


class InboundHub:
    """All listeners of a connector, the links of the devices that call in, and push routing."""

    def __init__(self, listeners: Sequence[ListenerSettings] = ()) -> None:
        self.listeners = {s.name: Listener(s, self) for s in listeners}
        self._links: dict[tuple[str, str], InboundLink] = {}
        self._by_title: dict[bytes, PushTarget] = {}
        self._by_link: dict[InboundLink, PushTarget] = {}
        #: Polled meters that push, by host; None where several devices share a host (a serial server).
        self._by_host: dict[str, PushTarget | None] = {}
        self._unknown_logged: set[str] = set()
        self.unknown_pushes = 0

    async def start(self) -> None:
        for listener in self.listeners.values():
            try:
                await listener.start()
            except OSError as exc:
                s = listener.settings
                log.error("listener %s: cannot listen on %s:%d: %s", s.name, s.host, s.port, exc.strerror or exc)

    async def stop(self) -> None:
        for link in self._links.values():
            link.on_presence = None  # stopping is not the meters leaving
        await asyncio.gather(*(listener.stop() for listener in self.listeners.values()), return_exceptions=True)

    # -- devices ------------------------------------------------------------------------------

    def link_for(self, listener: str, identity: str, name: str, wait_s: float = 0.0) -> InboundLink:
        """The one link of the device with ``identity`` on ``listener`` (made on first use)."""
        key = (listener, identity)
        link = self._links.get(key)
        if link is None:
            interface = self.listeners[listener].settings.interface if listener in self.listeners else Interface.WRAPPER
            link = self._links[key] = InboundLink(name, interface, wait_s, on_push=self._on_link_push)
        return link

    def link_of(self, listener: str, identity: str) -> InboundLink | None:
        return self._links.get((listener, identity))

    def calls_in(self, listener: str) -> bool:
        """Whether any device calls in on ``listener`` (else a connection has no one to identify as)."""
        return any(name == listener for name, _ in self._links)

    # -- the link.LinkProvider of meters that call in -----------------------------------------

    def acquire(self, settings: MeterSettings) -> tuple[Link, Mailbox]:
        if settings.listener is None or settings.identity is None:
            raise ValueError(f"{settings.label}: not a meter that calls in (no listener and identity)")
        link = self.link_for(settings.listener, settings.identity, settings.label, settings.call_in_wait)
        return link, link.mailbox(settings.server_address)

    def owns(self, link: object) -> bool:
        return isinstance(link, InboundLink)

    async def release(self, link: Link, address: int) -> None:
        link.forget(address)  # the connection is the meter's: it stays while the meter keeps it

    def add_push_target(self, target: PushTarget, link: InboundLink | None = None) -> None:
        if target.system_title is not None:
            self._by_title[target.system_title] = target
        if link is not None:
            self._by_link[link] = target
        if target.host:
            host = target.host.lower()
            self._by_host[host] = None if host in self._by_host else target

    def polled_pusher(self, peer_host: str | None) -> PushTarget | None:
        """The polled meter that pushes from ``peer_host`` (its configured host), if exactly one does."""
        return self._by_host.get(peer_host.lower()) if peer_host else None

    def unknown_identity(self, listener: str, identity: str, peer: str) -> None:
        level = logging.DEBUG if identity in self._unknown_logged else logging.WARNING
        self._unknown_logged.add(identity)
        log.log(level, "listener %s: unknown meter %r from %s: no device has this identity; connection closed",
                listener, identity, peer)

    # -- pushes -------------------------------------------------------------------------------

    def _on_link_push(self, link: InboundLink, apdu: bytes) -> None:
        self.push_received(link, apdu, link.name)

    def push_received(self, link: InboundLink | None, apdu: bytes, where: str, peer_host: str | None = None) -> None:
        """Route a push to its device: by the sender's system title (ciphered), else by the connection
        it came on (a meter that called in), else by the address it came from (a polled meter)."""
        received = time.time()
        title = push.sender_title(apdu)
        target = self._by_title.get(title) if title is not None else None
        if target is None and link is not None:
            target = self._by_link.get(link)
        if target is None:
            target = self.polled_pusher(peer_host)
        if target is None:
            self.unknown_pushes += 1
            sender = title.hex() if title is not None else where
            level = logging.DEBUG if sender in self._unknown_logged else logging.WARNING
            self._unknown_logged.add(sender)
            log.log(level, "push from %s ignored: no device has %s", sender,
                    "this system title" if title is not None else
                    "a push section for this connection or address (a polled meter's pushes are matched by "
                    "its host; see docs/configuration.md)")
            return
        try:
            note = push.decode(apdu, lambda t: self._keys(t, target), target.deviation_utc_minus_local)
        except push.PushError as exc:
            self.bad_push(target, where, exc)
            return
        target.deliver(note, received)

    def _keys(self, title: bytes, target: PushTarget) -> tuple[bytes, bytes] | None:
        own = self._by_title.get(title)
        return own.keys if own is not None else target.keys

    def bad_push(self, target: PushTarget | None, where: str, exc: push.PushError) -> None:
        """Counted always, logged once per meter and reason: a meter pushing garbage every 15 s
        must not fill the log."""
        if target is None:
            self.unknown_pushes += 1
            log.debug("push from %s dropped: %s", where, exc)
            return
        target.failures += 1
        level = logging.DEBUG if exc.reason in target.reasons_logged else logging.WARNING
        target.reasons_logged.add(exc.reason)
        log.log(level, "%s: push dropped: %s (counted as pushFailures; said once per reason)", target.name, exc)

    def report(self) -> dict[str, Any]:
        if not self.listeners:
            return {}
        out: dict[str, Any] = {name: {**listener.stats.as_dict(), "queued": listener.limits.queued,
                                      "port": listener.bound_port}
                               for name, listener in self.listeners.items()}
        out["unknownPushes"] = self.unknown_pushes
        return out
