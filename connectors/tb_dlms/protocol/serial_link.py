"""A serial port on the gateway (RS-485 bus, USB adapter, optical probe) as a link to its meters.

A ``transport.StreamLink`` like the TCP link of a serial server (framing, routing to per-address
mailboxes, the bus ``turn``, first_contact/unconfirm): the meters of one RS-485 bus share one port
exactly as the meters behind one serial server share one TCP connection, so the session cannot
tell them apart. Only opening differs (``_connect``):

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
from serial_asyncio_fast import SerialTransport, connection_for_serial

from . import mode_e
from .errors import ConnectError
from .settings import Interface, MeterSettings, SerialSettings
from .transport import StreamLink

log = logging.getLogger(__name__)

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD,
           "M": serial.PARITY_MARK, "S": serial.PARITY_SPACE}


def wire_seconds(n_bytes: int, baudrate: int, bits_per_byte: int = 10) -> float:
    """Time ``n_bytes`` take on the line: start bit, 8 data bits (or 7 + parity), one stop bit."""
    return n_bytes * bits_per_byte / baudrate


class SerialLink(StreamLink):
    """One serial port carrying the HDLC frames of the meters on its line."""

    def __init__(self, serial_settings: SerialSettings, connect_timeout: float) -> None:
        super().__init__(Interface.HDLC)
        self.serial = serial_settings
        self.path = serial_settings.port
        self.connect_timeout = connect_timeout
        #: The meter's IEC 62056-21 identification from the last sign-on (mode E only).
        self.identification: mode_e.Identification | None = None

    @classmethod
    def for_meter(cls, settings: MeterSettings) -> SerialLink:
        if settings.serial is None:
            raise ValueError(f"{settings.label}: no serial port in its settings")
        return cls(settings.serial, settings.connect_timeout)

    @property
    def name(self) -> str:
        return self.path

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        s = self.serial
        first = (mode_e.SIGN_ON_BAUD, 7, "E", 1.0) if s.mode_e else (s.baudrate, s.bytesize, s.parity, s.stopbits)
        port = await self._open_port(*first)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await connection_for_serial(loop, lambda: protocol, port)
        except (serial.SerialException, termios.error, OSError) as exc:
            port.close()
            raise ConnectError(_settings_error(self.path, first, exc)) from exc
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        if s.mode_e:
            try:
                await self._mode_e(port, reader, writer)
            except BaseException:
                _close_now(transport)
                raise
        return reader, writer

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
        except TimeoutError as exc:
            raise ConnectError(f"serial port {self.path} did not open within {self.connect_timeout:g} s") from exc
        except serial.SerialException as exc:
            raise ConnectError(_open_error(self.path, exc)) from exc
        except termios.error as exc:
            raise ConnectError(_settings_error(self.path, (baudrate, bytesize, parity, stopbits), exc)) from exc
        except (OSError, ValueError) as exc:
            raise ConnectError(f"cannot open serial port {self.path}: {exc}") from exc
        return port

    async def _mode_e(self, port: serial.Serial, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Sign-on at 300 baud 7E1, acknowledge the agreed rate, switch, wait, then HDLC."""
        s = self.serial
        request = mode_e.sign_on_request(s.device_address)
        sign_on = mode_e.SignOn(request)
        writer.write(request)
        try:
            async with asyncio.timeout(self.connect_timeout):
                while sign_on.result is None:
                    chunk = await reader.read(256)
                    if not chunk:
                        raise ConnectError(f"serial port {self.path} closed during the mode E sign-on")
                    try:
                        sign_on.feed(chunk)
                    except mode_e.SignOnFailed as exc:
                        exc.args = (f"{self.path}: {exc}",)
                        raise
        except TimeoutError:
            heard = bytes(sign_on.heard)
            said = f"; heard {heard[:40]!r}" if heard else ""
            raise mode_e.SignOnFailed(
                f"no IEC 62056-21 identification on {self.path} within {self.connect_timeout:g} s of the "
                f"mode E sign-on at 300 baud 7E1{said} (is the probe on the meter's optical port?)") from None
        except (serial.SerialException, OSError) as exc:
            raise ConnectError(f"serial port {self.path} lost during the mode E sign-on: {exc}") from exc
        ident = sign_on.result
        char = mode_e.baud_char_for(ident, s.baudrate)
        writer.write(mode_e.acknowledgement(char))
        await writer.drain()
        # The acknowledgement must have left the UART at 300 baud before the rate changes under it.
        await asyncio.get_running_loop().run_in_executor(None, port.flush)
        await asyncio.sleep(mode_e.ACK_WIRE_S)
        rate = mode_e.BAUD_RATES[char]
        try:
            port.baudrate = rate
            port.bytesize, port.parity, port.stopbits = s.bytesize, _PARITY[s.parity], s.stopbits
        except (serial.SerialException, termios.error, OSError, ValueError) as exc:
            raise ConnectError(f"serial port {self.path}: cannot switch to {rate} baud "
                               f"after the mode E sign-on: {exc}") from exc
        await asyncio.sleep(s.switch_delay)
        self.identification = ident
        log.info("%s: mode E sign-on: %s, HDLC at %d baud", self.path, ident.raw, rate)

    def _mark_closed(self, reason: str) -> None:
        # lastError of every meter on the line then names the port ("connection reset" alone would not).
        super()._mark_closed(reason if self.path in reason else f"serial port {self.path}: {reason}")

    async def _close_transport(self) -> None:
        transport = self._writer.transport if self._writer is not None else None
        await super()._close_transport()
        if isinstance(transport, SerialTransport):
            _close_now(transport)


def _close_now(transport: SerialTransport) -> None:
    """Close the port at once: the transport closes it on a later loop turn, and a reopen right
    after would be refused by our own exclusive lock."""
    port = transport.serial
    if not transport.is_closing():
        transport.abort()
    if port is not None:
        with contextlib.suppress(Exception):
            port.close()


def _settings_error(path: str, line: tuple[int, int, str, float], exc: BaseException) -> str:
    code = exc.args[0] if isinstance(exc, termios.error) and exc.args else getattr(exc, "errno", None)
    baudrate, bytesize, parity, stopbits = line
    said = f"{baudrate} baud {bytesize}{parity}{stopbits:g}"
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
