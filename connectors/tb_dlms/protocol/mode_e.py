"""IEC 62056-21 mode E sign-on: the ASCII handshake in front of HDLC on an optical port.

An optical probe starts at 300 baud 7E1. The client sends a request ``/?!`` CR LF (or
``/?address!`` CR LF); the meter answers with its identification ``/XXXZ\\2ident`` CR LF: XXX the
manufacturer's flag id, Z the highest baud rate it offers, ``\\2`` the enhanced identification
character that says binary mode (HDLC) is available. The client acknowledges with ACK '2' Z '2'
CR LF (HDLC protocol, rate Z, binary mode), both sides switch to rate Z and 8N1, and HDLC starts.

Sans-IO: bytes in, an ``Identification`` or an error out; the serial link does the waiting and the
line settings. Optical heads echo what we send, so our own request line is skipped when it comes
back (it also starts with ``/``).
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ConnectError

#: Baud-rate characters of protocol modes C and E (IEC 62056-21, 6.3.14 item 13).
BAUD_RATES = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
SIGN_ON_BAUD = 300
ACK = 0x06
#: The acknowledgement's 6 characters at 300 baud: some USB adapters report the output drained
#: while their FIFO still holds it, and a rate switch then garbles the tail.
ACK_WIRE_S = 6 * 10 / SIGN_ON_BAUD
#: Enhanced identification character '2': binary mode (HDLC) available (DLMS UA list of standard items).
MODE_E_MARKER = "2"
#: An identification message is at most '/' + 3 + 1 + 16 characters (+ the enhanced-capability
#: sequences); a line much longer than that is noise, not a meter speaking.
MAX_LINE = 128


class SignOnFailed(ConnectError):
    """No usable identification: silence, noise, or a meter that speaks another mode."""

    kind = "sign_on"


class NoModeE(SignOnFailed):
    """The meter answered but does not offer binary mode (HDLC): it speaks mode C only."""

    kind = "no_mode_e"


@dataclass(frozen=True, slots=True)
class Identification:
    manufacturer: str
    baud_char: str
    #: Manufacturer-specific identification after the baud character and enhanced sequences.
    ident: str
    #: Enhanced identification characters (after each backslash), e.g. ('2',) for mode E.
    enhanced: tuple[str, ...]
    raw: str

    @property
    def max_baudrate(self) -> int:
        return BAUD_RATES[self.baud_char]

    @property
    def mode_e(self) -> bool:
        return MODE_E_MARKER in self.enhanced

    @property
    def fast_reaction(self) -> bool:
        """A lower-case third letter: the meter may answer 20 ms after a request (else 200 ms)."""
        return self.manufacturer[2].islower()


def sign_on_request(device_address: str = "") -> bytes:
    """``/?!`` CR LF, or with a device address (up to 32 characters: digits, letters, spaces)."""
    if len(device_address) > 32 or any(c in "/!?" or not c.isprintable() for c in device_address):
        raise ValueError(f"invalid mode E device address {device_address!r}")
    return b"/?" + device_address.encode("ascii") + b"!\r\n"


def parse_identification(line: str) -> Identification:
    """Parse one identification line (without CR LF); raises SignOnFailed when it is not one."""
    text = line.strip("\r\n")
    if len(text) < 5 or text[0] != "/" or not text[1:4].isalpha():
        raise SignOnFailed(f"not an IEC 62056-21 identification: {text[:40]!r}")
    manufacturer, baud_char, rest = text[1:4], text[4], text[5:]
    if baud_char not in BAUD_RATES:
        raise SignOnFailed(f"identification {text[:40]!r}: baud-rate character {baud_char!r} is not "
                           f"one of modes C/E (0-6); the meter may speak mode A or B only")
    enhanced = []
    while len(rest) >= 2 and rest[0] == "\\":
        enhanced.append(rest[1])
        rest = rest[2:]
    return Identification(manufacturer, baud_char, rest, tuple(enhanced), text)


def baud_char_for(ident: Identification, wanted: int) -> str:
    """The highest rate both sides take: the meter's offer, capped by the configured rate."""
    best = "0"
    for char, rate in BAUD_RATES.items():
        if rate <= wanted and char <= ident.baud_char:
            best = max(best, char)
    return best


def acknowledgement(baud_char: str) -> bytes:
    """ACK '2' Z '2' CR LF: HDLC protocol, rate Z, binary mode."""
    if baud_char not in BAUD_RATES:
        raise ValueError(f"baud-rate character {baud_char!r}")
    return bytes([ACK]) + b"2" + baud_char.encode() + b"2\r\n"


class SignOn:
    """Collects the reply to a sign-on request and yields the identification once it is whole."""

    def __init__(self, request: bytes = b"/?!\r\n") -> None:
        self._request = request.rstrip(b"\r\n")
        self._buf = bytearray()
        self.result: Identification | None = None
        #: Everything received, for an error message ("answered ...").
        self.heard = bytearray()

    def feed(self, data: bytes) -> Identification | None:
        """Returns the identification when complete; raises SignOnFailed / NoModeE on a bad one."""
        if self.result is not None:
            return self.result
        # 7E1 read as 8 bits on some adapters leaves the parity bit set: strip it.
        data = bytes(b & 0x7F for b in data)
        self.heard += data[:MAX_LINE]
        self._buf += data
        while True:
            start = self._buf.find(b"/")
            if start < 0:
                self._buf.clear()
                return None
            del self._buf[:start]
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > MAX_LINE:
                    raise SignOnFailed(f"no end of line in {len(self._buf)} characters of identification")
                return None
            line = bytes(self._buf[:end]).rstrip(b"\r")
            del self._buf[:end + 1]
            if line == self._request or line.startswith(b"/?"):
                continue  # the optical head's echo of our own request
            ident = parse_identification(line.decode("ascii", "replace"))
            if not ident.mode_e:
                raise NoModeE(f"meter answered {ident.raw!r} without the mode E marker \\2: it offers "
                              f"IEC 62056-21 mode C only, not HDLC (set serial.modeE false for a direct "
                              f"HDLC port)")
            self.result = ident
            return ident
