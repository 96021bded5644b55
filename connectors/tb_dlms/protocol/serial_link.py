"""A serial port on the gateway (RS-485 bus, USB adapter, optical probe) as a link to its meters.

Same contract as the TCP ``Link`` of a serial server (open, send, frames routed to per-address
mailboxes, the bus ``turn``, drop_partial, first_contact/unconfirm, close): the meters of one
RS-485 bus share one port exactly as the meters behind one serial server share one TCP
connection, so the session cannot tell them apart. Only opening differs:

- the port is opened exclusively (pyserial ``exclusive``: an advisory ``flock``), because two
  programs driving one half-duplex bus garble each other's frames;
- a path that does not exist, or is not permitted, is a ConnectError naming the path; a USB
  adapter that was unplugged fails its reads, closes the link, and the next use opens the path
  again (the device node is back or the error says it is not);
- with ``modeE``, the IEC 62056-21 sign-on at 300 baud 7E1 comes first (protocol/mode_e.py), then
  the line is switched to the agreed rate and 8N1.

I/O through pyserial-asyncio-fast: the port's file descriptor is watched by the event loop like a
socket, so a thousand meters and a few serial ports still share one thread.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import termios

import serial
from serial_asyncio_fast import connection_for_serial

from . import mode_e
from .errors import ConnectError, LinkClosed
from .settings import Interface, SerialSettings
from .transport import Link, _Closed, _drop_closed

log = logging.getLogger(__name__)

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD,
           "M": serial.PARITY_MARK, "S": serial.PARITY_SPACE}


def wire_seconds(n_bytes: int, baudrate: int, bits_per_byte: int = 10) -> float:
    """Time ``n_bytes`` take on the line: start bit, 8 data bits (or 7 + parity), one stop bit."""
    return n_bytes * bits_per_byte / baudrate


class _PortProtocol(asyncio.Protocol):
    def __init__(self, link: "SerialLink") -> None:
        self.link = link

    def data_received(self, data: bytes) -> None:
        self.link._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link._lost(exc)


class SerialLink(Link):
    """One serial port carrying the HDLC frames of the meters on its line."""

    def __init__(self, serial_settings: SerialSettings, connect_timeout: float) -> None:
        super().__init__(serial_settings.port, 0, Interface.HDLC, connect_timeout)
        self.serial = serial_settings
        self.path = serial_settings.port
        self._transport = None
        self._sign_on: mode_e.SignOn | None = None
        self._sign_on_heard = asyncio.Event()
        #: The meter's IEC 62056-21 identification from the last sign-on (mode E only).
        self.identification: mode_e.Identification | None = None
        self.bytes_sent = 0

    @property
    def key(self) -> tuple:
        return ("serial", self.path)

    @property
    def is_open(self) -> bool:
        return self._transport is not None and self.closed_reason is None

    async def open(self) -> None:
        async with self._opening:
            if self.is_open:
                return
            await self._close_transport()
            self._framer.reset()
            s = self.serial
            first = dict(baudrate=mode_e.SIGN_ON_BAUD, bytesize=7, parity="E", stopbits=1) if s.mode_e else \
                dict(baudrate=s.baudrate, bytesize=s.bytesize, parity=s.parity, stopbits=s.stopbits)
            port = await self._open_port(**first)
            self.closed_reason = None
            loop = asyncio.get_running_loop()
            self._sign_on = mode_e.SignOn(mode_e.sign_on_request(s.device_address)) if s.mode_e else None
            try:
                self._transport, _ = await connection_for_serial(loop, lambda: _PortProtocol(self), port)
            except (serial.SerialException, termios.error, OSError) as exc:
                port.close()
                raise ConnectError(_settings_error(self.path, first, exc)) from exc
            try:
                if s.mode_e:
                    await self._mode_e(port)
            except BaseException:
                await self._close_transport()
                raise
            for box in self._mailboxes.values():
                box.drain()
                _drop_closed(box)

    async def _open_port(self, baudrate: int, bytesize: int, parity: str, stopbits: float) -> serial.Serial:
        port = serial.Serial()
        port.port = self.path
        port.baudrate, port.bytesize, port.parity, port.stopbits = baudrate, bytesize, _PARITY[parity], stopbits
        port.exclusive = True
        port.timeout = 0
        port.write_timeout = 0
        try:
            # Opening a USB adapter can block for a moment (the driver wakes it up).
            await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, port.open), self.connect_timeout)
        except asyncio.TimeoutError as exc:
            raise ConnectError(f"serial port {self.path} did not open within {self.connect_timeout:g} s") from exc
        except serial.SerialException as exc:
            raise ConnectError(_open_error(self.path, exc)) from exc
        except termios.error as exc:
            raise ConnectError(_settings_error(self.path, dict(baudrate=baudrate, bytesize=bytesize, parity=parity,
                                                               stopbits=stopbits), exc)) from exc
        except (OSError, ValueError) as exc:
            raise ConnectError(f"cannot open serial port {self.path}: {exc}") from exc
        return port

    async def _mode_e(self, port: serial.Serial) -> None:
        """Sign-on at 300 baud 7E1, acknowledge the agreed rate, switch, wait, then HDLC."""
        s = self.serial
        sign_on = self._sign_on
        assert sign_on is not None
        self._sign_on_heard.clear()
        self._transport.write(mode_e.sign_on_request(s.device_address))
        try:
            async with asyncio.timeout(self.connect_timeout):
                while sign_on.result is None:
                    await self._sign_on_heard.wait()
                    self._sign_on_heard.clear()
                    if self.closed_reason is not None:
                        raise ConnectError(f"serial port {self.path} lost during the mode E sign-on: "
                                           f"{self.closed_reason}")
                    if isinstance(self._sign_on_error, Exception):
                        raise self._sign_on_error
        except TimeoutError:
            heard = bytes(sign_on.heard)
            said = f"; heard {heard[:40]!r}" if heard else ""
            raise mode_e.SignOnFailed(
                f"no IEC 62056-21 identification on {self.path} within {self.connect_timeout:g} s of the "
                f"mode E sign-on at 300 baud 7E1{said} (is the probe on the meter's optical port?)") from None
        ident = sign_on.result
        char = mode_e.baud_char_for(ident, s.baudrate)
        self._transport.write(mode_e.acknowledgement(char))
        loop = asyncio.get_running_loop()
        # The acknowledgement must have left the UART at 300 baud before the rate changes under it.
        await loop.run_in_executor(None, port.flush)
        await asyncio.sleep(mode_e.ACK_WIRE_S)
        self._sign_on = None
        try:
            port.baudrate = mode_e.BAUD_RATES[char]
            port.bytesize, port.parity, port.stopbits = s.bytesize, _PARITY[s.parity], s.stopbits
        except (serial.SerialException, termios.error, OSError, ValueError) as exc:
            raise ConnectError(f"serial port {self.path}: cannot switch to {mode_e.BAUD_RATES[char]} baud "
                               f"after the mode E sign-on: {exc}") from exc
        await asyncio.sleep(s.switch_delay)
        self._framer.reset()
        self.identification = ident
        log.info("%s: mode E sign-on: %s, HDLC at %d baud", self.path, ident.raw, mode_e.BAUD_RATES[char])

    _sign_on_error: Exception | None = None

    def _received(self, data: bytes) -> None:
        sign_on = self._sign_on
        if sign_on is not None:
            try:
                sign_on.feed(data)
            except mode_e.SignOnFailed as exc:
                exc.args = (f"{self.path}: {exc}",)
                self._sign_on_error = exc
            self._sign_on_heard.set()
            return
        for frame in self._framer.feed(data):
            self._route(frame, len(frame.raw))

    def _lost(self, exc: Exception | None) -> None:
        self._mark_closed(f"serial port {self.path} lost: {exc}" if exc else f"serial port {self.path} closed")
        self._sign_on_heard.set()

    async def send(self, data: bytes) -> None:
        if not self.is_open:
            raise LinkClosed(self.closed_reason or "link not open")
        self._transport.write(data)
        self.bytes_sent += len(data)
        if self.closed_reason is not None:
            raise LinkClosed(f"serial port {self.path} lost: {self.closed_reason}")

    def _mark_closed(self, reason: str) -> None:
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        for box in self._mailboxes.values():
            box.queue.put_nowait(_Closed(reason))
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()

    async def _close_transport(self) -> None:
        transport, self._transport = self._transport, None
        self._sign_on, self._sign_on_error = None, None
        if transport is not None:
            port = transport.serial
            if not transport.is_closing():
                transport.abort()
            # abort() closes the port on the next loop turn; close it now so that a reopen right
            # after is not refused by our own exclusive lock.
            if port is not None:
                with contextlib.suppress(Exception):
                    port.close()


def _settings_error(path: str, line: dict, exc: BaseException) -> str:
    code = exc.args[0] if isinstance(exc, termios.error) and exc.args else getattr(exc, "errno", None)
    said = f"{line['baudrate']} baud {line['bytesize']}{line['parity']}{line['stopbits']:g}"
    why = "the driver refuses these line settings" if code == errno.EINVAL else str(exc)
    return f"serial port {path}: cannot set {said}: {why}"


def _open_error(path: str, exc: serial.SerialException) -> str:
    code = exc.errno
    if code == errno.ENOENT:
        return f"serial port {path} does not exist (unplugged adapter or wrong path)"
    if code in (errno.EACCES, errno.EPERM):
        return f"serial port {path}: permission denied (add the gateway user to the port's group, e.g. dialout)"
    if code in (errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in str(exc):
        return f"serial port {path} is in use by another program (opened exclusively: one driver per bus)"
    return f"cannot open serial port {path}: {exc}"
