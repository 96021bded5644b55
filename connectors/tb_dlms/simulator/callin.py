"""Simulated meters that call their head-end, push DataNotifications, speak UDP, and misbehave.

A ``CallingMeter`` dials host:port (like a cellular meter behind the operator's NAT), then serves
its objects over that connection exactly as a listening meter serves an accepted one (same
``server.AcceptedConnection``), and pushes a DataNotification every ``push_period`` s, plain or ciphered
(general-glo-ciphering, suite 0). When the connection drops it calls again after ``redial_s``.
Misbehaviours (``behaviour``): ``silent`` dials in and never answers, ``loop`` hangs up and
redials at once, forever; a meter claims another's identity with ``claim``.

``UdpMeterPort`` serves one meter over UDP WRAPPER (one gurux server per peer address).
``CallInFleet`` runs any number of them on one loop in a daemon thread, for tests and benchmarks.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from typing import Iterable

from ..protocol import axdr, push
from ..protocol.quiet import silence_gurux
from . import objects as cosem
from .meter import Meter
from .server import AcceptedConnection, Port
from .spec import MeterSpec

log = logging.getLogger(__name__)

#: What a push carries, in this order (the push setup's object list).
PUSH_OBJECTS = (cosem.ENERGY_IMPORT, cosem.ENERGY_EXPORT, "1.0.1.7.0.255")
PUSH_CLIENT_WPORT = 0x0066
BEHAVIOURS = ("normal", "silent", "loop")


def push_values(meter: Meter, when: float) -> list:
    """The raw register values a push carries (unscaled, as on the wire)."""
    out = []
    for ln in PUSH_OBJECTS:
        reg = cosem.REGISTER_BY_LN[ln]
        out.append(round(reg.quantity(meter.load, when) / 10 ** reg.scaler))
    return out


def notification(meter: Meter, invoke_id: int, ciphered: bool, when: float | None = None) -> bytes:
    """A WRAPPER frame with a DataNotification of ``PUSH_OBJECTS`` at meter time ``when``."""
    when = int(meter.now() if when is None else when)  # whole seconds: what the date-time carries
    body = axdr.structure(*(cosem.REGISTER_BY_LN[ln].encode(meter.load, when) for ln in PUSH_OBJECTS))
    apdu = push.encode(body, invoke_id, meter.spec.encode_time(when))
    if ciphered:
        meter.invocation_counter += 1
        spec = meter.spec
        assert spec.system_title is not None  # MeterSpec.__post_init__ gives every meter one
        apdu = push.seal(apdu, spec.system_title, meter.invocation_counter, spec.block_cipher_key,
                         spec.authentication_key)
    return b"\x00\x01" + meter.spec.logical_address.to_bytes(2, "big") + PUSH_CLIENT_WPORT.to_bytes(2, "big") \
        + len(apdu).to_bytes(2, "big") + apdu


class CallingMeter:
    """One meter that dials in (see the module docstring)."""

    def __init__(self, spec: MeterSpec, host: str, port: int, *, push_period: float = 0.0,
                 ciphered: bool = False, behaviour: str = "normal", claim: str | None = None,
                 redial_s: float = 1.0, push_offset: float = 0.0) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"{spec.name}: behaviour must be one of {BEHAVIOURS}")
        self.meter = Meter(spec)
        self.meter.identity = claim
        self.host, self.port = host, port
        self.push_period, self.ciphered = push_period, ciphered
        self.push_offset = push_offset
        self.behaviour = behaviour
        self.redial_s = redial_s
        self.dials = self.pushes = 0
        #: (wall time sent, meter timestamp ms, raw values) of every push: tests and benchmarks match
        #: them with what ThingsBoard received.
        self.sent: list[tuple[float, int, list]] = []
        self.link: AcceptedConnection | None = None
        self.enabled = True
        self._port = Port(spec.interface, [self.meter], host, port)
        self._invoke = 0

    @property
    def name(self) -> str:
        return self.meter.name

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.enabled:
                await asyncio.sleep(0.2)
                continue
            try:
                self.dials += 1
                transport, link = await loop.create_connection(lambda: self._new_link(), self.host, self.port)
            except OSError:
                await asyncio.sleep(self.redial_s)
                continue
            self.link = link
            try:
                if self.behaviour == "loop":
                    await asyncio.sleep(0.05)
                    transport.close()
                    continue
                await self._connected(link)
            finally:
                self.link = None
                transport.close()
            await asyncio.sleep(self.redial_s)

    def _new_link(self) -> AcceptedConnection:
        link = AcceptedConnection(self._port)
        if self.behaviour == "silent":
            link.data_received = lambda data: None  # type: ignore[method-assign]  # dials in, never says a word
        return link

    async def _connected(self, link: AcceptedConnection) -> None:
        next_push = time.time() + (self.push_offset or self.push_period)
        while not link.closed and self.enabled:
            if self.push_period and self.behaviour == "normal":
                delay = next_push - time.time()
                if delay <= 0:
                    self._push(link)
                    next_push += self.push_period
                    continue
                await asyncio.sleep(min(delay, 0.5))
            else:
                await asyncio.sleep(0.5)

    def _push(self, link: AcceptedConnection) -> None:
        self._invoke = (self._invoke + 1) & 0x00FFFFFF
        when = int(self.meter.now())
        frame = notification(self.meter, self._invoke, self.ciphered, when)
        if link.transport is not None:
            link.transport.write(frame)
        self.pushes += 1
        self.sent.append((time.time(), when * 1000, push_values(self.meter, when)))

    def hang_up(self) -> None:
        """Drop the connection now (the cellular link is cut); ``enabled`` False keeps it down."""
        if self.link is not None and self.link.transport is not None:
            self.link.transport.close()


class UdpMeterPort(asyncio.DatagramProtocol):
    """One meter over UDP WRAPPER: each datagram a request frame, each reply a datagram."""

    def __init__(self, spec: MeterSpec, host: str = "127.0.0.1", port: int = 0) -> None:
        self.meter = Meter(spec)
        self.host, self.port = host, port
        self.transport: asyncio.DatagramTransport | None = None
        self._servers: dict = {}
        self.datagrams = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, self.port))
        self.port = self.transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr) -> None:
        self.datagrams += 1
        meter = self.meter
        meter.requests += 1
        if meter.faults.active and (meter.faults.peek("blackhole") or meter.faults.take("no_reply")):
            return
        server = self._servers.get(addr)
        if server is None:
            server = self._servers[addr] = meter.new_server("wrapper")
        reply = server.handle(data)
        if reply and self.transport is not None:
            self.transport.sendto(reply, addr)
            meter.replies += 1

    async def stop(self) -> None:
        if self.transport is not None:
            self.transport.close()


class CallInFleet:
    """Calling meters and UDP meters on one loop in a daemon thread."""

    def __init__(self, callers: Iterable[CallingMeter] = (), udp: Iterable[UdpMeterPort] = ()) -> None:
        silence_gurux("tb_dlms.simulator.gurux")
        self.callers = {c.name: c for c in callers}
        self.udp = {u.meter.name: u for u in udp}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task] = []
        self._stop: asyncio.Event | None = None

    def start(self, timeout: float = 30.0) -> "CallInFleet":
        ready: concurrent.futures.Future = concurrent.futures.Future()

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                for u in self.udp.values():
                    await u.start()
            except BaseException as exc:
                ready.set_exception(exc)
                return
            self._tasks = [asyncio.create_task(c.run()) for c in self.callers.values()]
            ready.set_result(None)
            await self._stop.wait()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for c in self.callers.values():
                c.hang_up()
            for u in self.udp.values():
                await u.stop()

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), name="dlms-callin", daemon=True)
        self._thread.start()
        ready.result(timeout)
        return self

    def add(self, caller: CallingMeter) -> None:
        """Start another calling meter (a flood, a second connection for one identity)."""
        self.callers[caller.name] = caller

        loop = self.loop
        assert loop is not None, "CallInFleet.start() first"

        def go() -> None:
            self._tasks.append(loop.create_task(caller.run()))

        loop.call_soon_threadsafe(go)

    def call(self, fn, *args):
        fut = asyncio.run_coroutine_threadsafe(_as_coro(fn, *args), self.loop)
        return fut.result(10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop is None or self._stop is None:
            return
        self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)


async def _as_coro(fn, *args):
    return fn(*args)
