"""Meters on a serial line: a pseudo-terminal the client opens like /dev/ttyUSB0, at the line's pace.

A ``SerialLine`` is the pty master side of one RS-485 bus or optical port: the meters on it are
told apart by HDLC address (silence for others), one exchange at a time. Unlike loopback TCP, it
keeps the pace of a real line, so tests and benchmarks see wire time:

- a request is handled once its last byte would have arrived (its bytes at 10 bits each at the
  line's baud rate, 8N1 or 7E1 alike), then after the meter's turnaround (``MeterSpec.delay``);
- a reply leaves in small chunks on a fixed schedule of 10 bits per byte.

The client reaches the line through a stable path (a symlink to the pty's slave, like udev's
/dev/serial/by-id names): ``unplug()`` removes it and hangs the pty up (reads fail with EIO, as
on a USB adapter pulled out), ``replug()`` makes a new pty behind the same path.

Mode E (IEC 62056-21): a line whose meter has ``mode_e`` answers a sign-on ``/?!`` CR LF at 300
baud with its identification, takes the acknowledgement and continues at the agreed rate. A pty
carries no baud rate, so the pace is the simulator's own notion of the line's state.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import tty

from ..protocol import mode_e
from ..protocol.framing import HdlcFrameReader
from .meter import Meter, MeterServer

log = logging.getLogger(__name__)

#: Bytes written per step of a paced reply: small enough that a reader sees bytes trickle in.
_CHUNK = 16
_BITS = 10


class SerialLine:
    """One pty with the meters on its line (``hdlc_group``-like: by ``MeterSpec.serial_line``)."""

    interface = "hdlc"

    def __init__(self, name: str, meters: list[Meter], path: str | None, baudrate: int) -> None:
        self.name = name
        self.meters = meters
        self.path = path
        self.baudrate = baudrate
        self.by_address = {m.spec.server_address: m for m in meters}
        self.mode_e_meter = next((m for m in meters if m.spec.mode_e), None)
        self.port = 0  # for describe(): a line has a path, not a TCP port
        self.tasks: set[asyncio.Task] = set()
        self._master: int | None = None
        self._slave: int | None = None
        self._reader = HdlcFrameReader()
        self._sessions: dict[Meter, MeterServer] = {}
        self._pending: list = []
        self._worker: asyncio.Task | None = None
        self._bus = asyncio.Lock()
        #: Mode E: the line speaks IEC 62056-21 at 300 baud until a sign-on is acknowledged.
        self._signing_on = self.mode_e_meter is not None
        self._ascii = bytearray()
        self._rate = mode_e.SIGN_ON_BAUD if self._signing_on else baudrate
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def device(self) -> str:
        """What a client opens: the stable path, or the pty's own name."""
        return self.path or (os.ttyname(self._slave) if self._slave is not None else "")

    async def start(self) -> None:
        self._open()

    def _open(self) -> None:
        self._master, self._slave = os.openpty()
        # Raw until the client sets its own line settings: no echo, no line editing.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        if self.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            os.symlink(os.ttyname(self._slave), self.path)
        asyncio.get_running_loop().add_reader(self._master, self._readable)
        self._restart()

    def _restart(self) -> None:
        self._reader = HdlcFrameReader()
        self._sessions.clear()
        self._pending.clear()
        self._signing_on = self.mode_e_meter is not None
        self._rate = mode_e.SIGN_ON_BAUD if self._signing_on else self.baudrate
        self._ascii.clear()

    def _close_pty(self) -> None:
        if self._master is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
        self._master = self._slave = None

    def unplug(self) -> None:
        """The adapter is pulled out: the path disappears and the open port fails (EIO)."""
        if self.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self._cancel_work()
        self._close_pty()

    def replug(self) -> None:
        if self._master is None:
            self._open()

    async def stop(self) -> None:
        if self.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        workers = self._cancel_work()
        await asyncio.gather(*workers, return_exceptions=True)
        self._close_pty()

    def _cancel_work(self) -> list:
        workers = list(self.tasks)
        for worker in workers:
            worker.cancel()
        self._worker = None
        return workers

    # ---- receiving ------------------------------------------------------------------------
    def _readable(self) -> None:
        assert self._master is not None  # the reader is removed before the pty closes
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:
            # EIO: nobody has the slave open (the client closed the port). A real line just
            # goes quiet; the meter forgets any half-received frame.
            return
        if not data:
            return
        self.bytes_in += len(data)
        arrived = time.monotonic()
        if self._sign_on_bytes(data):
            return
        for frame in self._reader.feed(data):
            self._pending.append((frame, arrived))
        if self._pending and self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._drain())
            self.tasks.add(self._worker)
            self._worker.add_done_callback(self.tasks.discard)

    def _sign_on_bytes(self, data: bytes) -> bool:
        """Mode E: collect ASCII lines while signing on; a sign-on request restarts it any time."""
        if self.mode_e_meter is None:
            return False
        if not self._signing_on:
            if b"/?" not in data or not data.rstrip().endswith(b"!"):
                return False
            self._restart()  # a client signing on again (it reopened the port)
        self._ascii += data
        while b"\n" in self._ascii:
            line, _, rest = bytes(self._ascii).partition(b"\n")
            self._ascii[:] = rest
            self._spawn(self._ascii_line(line.rstrip(b"\r")))
        return True

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _ascii_line(self, line: bytes) -> None:
        meter = self.mode_e_meter
        assert meter is not None  # only a mode E line collects ASCII lines
        spec = meter.spec
        await self._arrival(len(line) + 2)
        if line.startswith(b"/?") and line.endswith(b"!"):
            address = line[2:-1].decode("ascii", "replace")
            if address and address != spec.mode_e_address:
                return  # addressed to another meter: silence
            if spec.mode_e_silent:
                return
            async with self._bus:
                await asyncio.sleep(max(spec.delay, 0.02))
                await self._paced((spec.mode_e_identification or "").encode("ascii") + b"\r\n")
        elif line[:1] == bytes([mode_e.ACK]) and len(line) == 4 and line[1:2] == b"2" and line[3:4] == b"2":
            char = line[2:3].decode()
            if char in mode_e.BAUD_RATES:
                self._rate = mode_e.BAUD_RATES[char]
                self._signing_on = False
                self._reader = HdlcFrameReader()
                log.debug("%s: mode E acknowledged, HDLC at %d baud", self.name, self._rate)

    async def _arrival(self, n_bytes: int) -> None:
        """A request is whole only when its last byte has crossed the line."""
        await asyncio.sleep(n_bytes * _BITS / self._rate)

    # ---- answering ------------------------------------------------------------------------
    async def _drain(self) -> None:
        try:
            while self._pending:
                frame, arrived = self._pending.pop(0)
                await self._handle(frame, arrived)
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - a bug must not kill the line
            log.exception("serial line %s failed", self.name)
        finally:
            self._worker = None

    async def _handle(self, frame, arrived: float) -> None:
        # The frame's bytes reached the pty at once; on the wire the last one comes later.
        due = arrived + len(frame.raw) * _BITS / self._rate
        meter = self.by_address.get(frame.destination)
        async with self._bus:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if meter is None:
                return  # another meter's address: a real bus stays silent
            meter.requests += 1
            faults = meter.faults
            if faults.active and (faults.peek("blackhole") or faults.take("no_reply")):
                return
            reply = self._session(meter).handle(frame.raw)
            if reply is None:
                return
            if meter.spec.delay > 0:
                await asyncio.sleep(meter.spec.delay)
            await self._paced(reply)
            meter.replies += 1

    def _session(self, meter: Meter) -> MeterServer:
        session = self._sessions.get(meter)
        if session is None or session.generation != meter.generation:
            session = self._sessions[meter] = meter.new_server("hdlc")
        return session

    async def _paced(self, data: bytes) -> None:
        """Write at the line's rate: chunk k leaves when its bytes have had their wire time."""
        start = time.monotonic()
        per_byte = _BITS / self._rate
        for i in range(0, len(data), _CHUNK):
            chunk = data[i:i + _CHUNK]
            await asyncio.sleep(max(0.0, start + (i + len(chunk)) * per_byte - time.monotonic()))
            if self._master is None:
                return
            try:
                os.write(self._master, chunk)
            except OSError:
                return
            self.bytes_out += len(chunk)

    def on_reboot(self, meter: Meter, close: bool) -> None:
        self._sessions.pop(meter, None)
