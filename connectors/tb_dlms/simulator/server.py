"""TCP listeners: bytes to frames to meters and back, with faults and delays, on one event loop.

A ``Port`` is one listening socket: a WRAPPER meter, a single HDLC meter, or several HDLC meters
behind one port like meters on an RS-485 bus behind a serial server (routed by HDLC destination
address, one reply at a time, silence for unknown addresses). An ``AcceptedConnection`` is one
accepted connection; it owns the per-connection gurux servers, so an association ends with its
TCP connection.
asyncio Protocols (not streams) keep an idle connection down to a few objects.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import socket
import struct

from ..protocol.framing import HdlcFrameReader, WrapperFrameReader
from .meter import Meter, MeterServer

log = logging.getLogger(__name__)


class Port:
    """One listening socket and the meters reachable through it."""

    def __init__(self, interface: str, meters: list[Meter], host: str, port: int) -> None:
        self.interface = interface
        self.meters = meters
        self.host = host
        self.port = port
        self.by_address = {m.spec.server_address: m for m in meters}
        #: Shared HDLC ports answer one request at a time, like a half-duplex bus.
        self.bus = asyncio.Lock() if len(meters) > 1 else None
        self.links: set[AcceptedConnection] = set()
        #: Every request task of every connection, until it ends: stop() cancels and awaits them
        #: all, also those of connections already closed (their task may still sleep or wait).
        self.tasks: set[asyncio.Task] = set()
        self.server: asyncio.base_events.Server | None = None

    def route(self, frame) -> Meter | None:
        return self.by_address.get(frame.destination)

    async def start(self) -> None:
        self.server = await asyncio.get_running_loop().create_server(
            lambda: AcceptedConnection(self), self.host, self.port, reuse_address=True, backlog=64
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for link in list(self.links):
            if link.transport is not None:
                link.transport.abort()
        # A reply being delayed (delay fault) or waiting for the bus must not outlive the simulator
        # as a pending task: the loop closed under it logs "Task was destroyed but it is pending!".
        workers = list(self.tasks)
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()


class AcceptedConnection(asyncio.Protocol):
    """One TCP connection a client opened to a simulated port (not the client side's link)."""

    def __init__(self, port: Port) -> None:
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.reader = HdlcFrameReader() if port.interface == "hdlc" else WrapperFrameReader()
        self.sessions: dict[Meter, MeterServer] = {}
        self.pending: collections.deque = collections.deque()
        self.worker: asyncio.Task | None = None
        self.closed = False

    def _write(self, data: bytes) -> None:
        if self.transport is not None:  # set by connection_made(), before any frame arrives
            self.transport.write(data)

    # ---- asyncio callbacks --------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.port.links.add(self)
        for meter in self.port.meters:
            meter.connections += 1

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.port.links.discard(self)
        for meter in self.sessions:
            meter.links.discard(self)
        self.sessions.clear()
        self.pending.clear()
        if self.worker is not None:
            # Nobody is left to read the reply: stop waiting (for a delay, for the bus) now.
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.pending.extend(self.reader.feed(data))
        if self.pending and self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._drain())
            self.port.tasks.add(self.worker)
            self.worker.add_done_callback(self.port.tasks.discard)

    # ---- request handling ---------------------------------------------------------------
    async def _drain(self) -> None:
        try:
            while self.pending and not self.closed:
                await self._handle(self.pending.popleft())
        except Exception:  # pragma: no cover - a bug must not kill the listener
            log.exception("simulator link failed")
            self._close()
        finally:
            self.worker = None

    async def _handle(self, frame) -> None:
        meter = self.port.route(frame)
        if meter is None:
            return  # wrong address: a real bus stays silent
        meter.requests += 1
        faults = meter.faults
        if faults.active:
            if faults.peek("blackhole") or faults.take("no_reply"):
                return
            if faults.take("drop_connection"):
                self._close()
                return
            if faults.take("reset"):
                self._reset()
                return
            endless = faults.peek("endless_blocks")
            if endless is not None and endless.obis is not None and self.port.interface == "wrapper":
                block = _endless_block(frame.raw, endless.obis)
                if block is not None:
                    self._write(block)
                    meter.replies += 1
                    return
        reply = self._session(meter).handle(frame.raw)
        delay = meter.spec.delay
        if faults.active:
            extra = faults.take("delay")
            if extra is not None:
                delay += extra.seconds
        if self.port.bus is not None:
            async with self.port.bus:
                await self._reply(meter, reply, delay)
        else:
            await self._reply(meter, reply, delay)

    async def _reply(self, meter: Meter, reply: bytes | None, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if reply is None or self.closed:
            return
        faults = meter.faults
        if faults.active:
            junk = faults.take("garbage")
            if junk is not None:
                self._write(faults.garbage(len(reply)))
                if not junk.before:
                    return
            if faults.take("half_frame"):
                self._write(reply[: len(reply) // 2])
                return
        self._write(reply)
        meter.replies += 1

    def _session(self, meter: Meter) -> MeterServer:
        session = self.sessions.get(meter)
        if session is None or session.generation != meter.generation:
            session = meter.new_server(self.port.interface)
            self.sessions[meter] = session
            meter.links.add(self)
        return session

    def on_reboot(self, meter: Meter, close: bool) -> None:
        self.sessions.pop(meter, None)
        meter.links.discard(self)
        if close:
            self._close()

    def _close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def _reset(self) -> None:
        """Close with RST, as a serial server that reboots or a NAT that forgets us."""
        if self.closed or self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.closed = True
        self.transport.abort()


#: Data bytes per block of an endless transfer: what a 1024-byte PDU carries.
_BLOCK_DATA = 1000


def _endless_block(raw: bytes, obis: str) -> bytes | None:
    """A GET-Response-With-Datablock that is never the last (WRAPPER), for a GET of ``obis``.

    The first block starts an octet string claiming 2^31 - 1 bytes; every GET-Request-Next gets
    the following block: a client that does not bound what it accumulates never stops.
    """
    apdu = raw[8:]
    ln = bytes(int(x) for x in obis.split("."))
    if apdu[:2] == b"\xc0\x02" and len(apdu) >= 7:
        number = int.from_bytes(apdu[3:7], "big") + 1
    elif apdu[:1] == b"\xc0" and apdu[1:2] in (b"\x01", b"\x03") and ln in apdu:
        number = 1
    else:
        return None
    data = (b"\x09\x84\x7f\xff\xff\xff" if number == 1 else b"") + b"\x5a" * _BLOCK_DATA
    body = (b"\xc4\x02" + apdu[2:3] + b"\x00" + number.to_bytes(4, "big") + b"\x00\x82"
            + len(data).to_bytes(2, "big") + data)
    client, server = raw[2:4], raw[4:6]
    return b"\x00\x01" + server + client + len(body).to_bytes(2, "big") + body
