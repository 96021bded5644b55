"""The public face of the simulator: many meters, one event loop, usable from sync or async code.

Tests and benchmarks want ``start()``/``stop()`` from plain synchronous code (the loop then runs
in a daemon thread); the CLI and async tests want ``await sim.serve()`` in their own loop. Fault
injection from another thread is marshalled onto the loop so meter state is only ever touched
by the loop thread.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import TYPE_CHECKING, Iterable

from ..protocol.quiet import silence_gurux
from .faults import Fault
from .meter import Meter
from .serial_line import SerialLine
from .server import Port
from .spec import MeterSpec

if TYPE_CHECKING:  # imported when a control port is asked for (start_async)
    from .control import ControlServer


class Simulator:
    def __init__(self, specs: Iterable[MeterSpec], host: str = "127.0.0.1",
                 control_port: int | None = None) -> None:
        silence_gurux("tb_dlms.simulator.gurux")  # the CLI prints a table people parse: keep stdout clean
        self.host = host
        self.meters: dict[str, Meter] = {}
        for spec in specs:
            if spec.name in self.meters:
                raise ValueError(f"duplicate meter name {spec.name!r}")
            self.meters[spec.name] = Meter(spec)
        self.ports: list[Port | SerialLine] = self._plan_ports()
        self._port_of = {m.name: p for p in self.ports for m in p.meters}
        self.control_port = control_port
        self._control: ControlServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    def _plan_ports(self) -> list[Port | SerialLine]:
        groups: dict[str, list[Meter]] = {}
        lines: dict[str, list[Meter]] = {}
        ports: list[Port | SerialLine] = []
        for meter in self.meters.values():
            spec = meter.spec
            if spec.serial_line is not None:
                lines.setdefault(spec.serial_line, []).append(meter)
            elif spec.interface == "hdlc" and spec.hdlc_group:
                groups.setdefault(spec.hdlc_group, []).append(meter)
            else:
                ports.append(Port(spec.interface, [meter], self.host, spec.port))
        for name, members in groups.items():
            seen: dict[int, str] = {}
            for m in members:
                other = seen.setdefault(m.spec.server_address, m.name)
                if other != m.name:
                    raise ValueError(f"HDLC group {name}: {m.name} and {other} share an address")
            port = next((m.spec.port for m in members if m.spec.port), 0)
            ports.append(Port("hdlc", members, self.host, port))
        for name, members in lines.items():
            _check_line(name, members)
            path = next((m.spec.serial_path for m in members if m.spec.serial_path), None)
            ports.append(SerialLine(name, members, path, members[0].spec.baudrate))
        return ports

    # ---- lifecycle ------------------------------------------------------------------------
    async def start_async(self) -> None:
        """Open every listener in the running loop (and the control channel if asked)."""
        self.loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        for port in self.ports:
            await port.start()
        if self.control_port is not None:
            from .control import ControlServer

            self._control = ControlServer(self, self.host if self.host != "0.0.0.0" else "127.0.0.1",
                                          self.control_port)
            await self._control.start()
            self.control_port = self._control.port

    async def stop_async(self) -> None:
        if self._control is not None:
            await self._control.stop()
        await asyncio.gather(*(p.stop() for p in self.ports))
        if self._stopped is not None:
            self._stopped.set()

    def _stop_event(self) -> asyncio.Event:
        if self._stopped is None:  # start_async() creates it
            raise RuntimeError("the simulator has not been started")
        return self._stopped

    async def serve(self) -> None:
        """Run until ``stop()`` (or cancellation)."""
        if self._stopped is None:
            await self.start_async()
        try:
            await self._stop_event().wait()
        finally:
            if not self._stop_event().is_set():
                await self.stop_async()

    async def __aenter__(self) -> "Simulator":
        await self.start_async()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop_async()

    def start(self, timeout: float = 30.0) -> "Simulator":
        """Run the loop in a daemon thread; returns once every port is listening."""
        ready: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)

            async def main() -> None:
                try:
                    await self.start_async()
                except BaseException as exc:
                    ready.set_exception(exc)
                    return
                ready.set_result(None)
                await self._stop_event().wait()

            try:
                loop.run_until_complete(main())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="dlms-simulator", daemon=True)
        self._thread.start()
        ready.result(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop is None or self._stopped is None or self._stopped.is_set():
            return
        if self._thread is not None and threading.current_thread() is not self._thread:
            asyncio.run_coroutine_threadsafe(self.stop_async(), self.loop).result(timeout)
            self._thread.join(timeout)
            self._thread = None
        else:
            self.loop.create_task(self.stop_async())

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- queries and control ---------------------------------------------------------------
    def port_of(self, name: str) -> int:
        return self._port_of[name].port

    def path_of(self, name: str) -> str:
        """The device a client opens for a meter on a serial line."""
        line = self._port_of[name]
        if not isinstance(line, SerialLine):
            raise ValueError(f"{name} is not on a serial line")
        return self._call(lambda: line.device)

    def line(self, name: str) -> SerialLine:
        return next(p for p in self.ports if isinstance(p, SerialLine) and p.name == name)

    def unplug(self, line: str) -> None:
        """The line's adapter is pulled out (the path disappears, the open port fails)."""
        self._call(self.line(line).unplug)

    def replug(self, line: str) -> None:
        self._call(self.line(line).replug)

    def meter(self, name: str) -> Meter:
        return self.meters[name]

    def _call(self, fn, *args):
        """Run ``fn`` on the loop thread (directly if we are on it or it is not running)."""
        loop = self.loop
        if loop is None or not loop.is_running() or self._on_loop():
            return fn(*args)
        fut = concurrent.futures.Future()

        def run():
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # pragma: no cover - passed to the caller
                fut.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return fut.result(10)

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def inject(self, name: str, fault: Fault) -> None:
        meter = self.meters[name]
        if fault.kind == "reboot":
            self._call(meter.reboot, fault.close)
        else:
            self._call(meter.faults.inject, fault)

    def clear(self, name: str, kind: str | None = None) -> None:
        self._call(self.meters[name].faults.clear, kind)

    def reboot(self, name: str, close: bool = True) -> None:
        self._call(self.meters[name].reboot, close)

    def advance_clock(self, name: str, seconds: float) -> None:
        self._call(self.meters[name].advance_clock, seconds)

    def jump_clock(self, name: str, seconds: float) -> None:
        self._call(self.meters[name].jump_clock, seconds)

    def stats(self, name: str | None = None) -> dict:
        if name is not None:
            return self._call(self.meters[name].stats)
        return self._call(lambda: {n: m.stats() for n, m in self.meters.items()})

    def describe(self) -> list[dict]:
        """One row per meter: what a client needs to reach it."""
        rows = []
        for port in self.ports:
            for m in port.meters:
                s = m.spec
                on_line = isinstance(port, SerialLine)
                rows.append({
                    "name": s.name, "interface": s.interface, "host": "serial" if on_line else self.host,
                    "port": port.device if isinstance(port, SerialLine) else port.port,
                    "server_address": s.server_address, "logical": s.logical_address,
                    "physical": s.effective_physical_address, "client": s.client_address,
                    "auth": s.auth, "serial": s.serial_number,
                })
        return rows


def _check_line(name: str, members: list[Meter]) -> None:
    seen: dict[int, str] = {}
    for m in members:
        other = seen.setdefault(m.spec.server_address, m.name)
        if other != m.name:
            raise ValueError(f"serial line {name}: {m.name} and {other} share an address")
    if len({m.spec.baudrate for m in members}) > 1:
        raise ValueError(f"serial line {name}: all meters on one line run at one baud rate")
    if sum(1 for m in members if m.spec.mode_e) > 1:
        raise ValueError(f"serial line {name}: an optical port (mode E) reaches one meter")
