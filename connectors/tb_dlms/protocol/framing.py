"""Split a byte stream from a meter into whole frames.

Serial servers deliver bytes, not frames: a reply may arrive in pieces, two replies may arrive
together, and the tail of a frame we gave up on may sit in front of the next one. Frames are found
by their length field (HDLC format field, WRAPPER header), never by scanning for 0x7E, because the
checksum of a valid frame can itself contain 0x7E. Only when the stream is out of step do we look
for the next plausible start, and a candidate is accepted only when its length, closing flag and
checksums all agree. Skipped bytes are counted, never fatal.

Pure functions and small classes, no I/O: used by the client transport and by the simulator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

HDLC_FLAG = 0x7E
WRAPPER_VERSION = 0x0001
WRAPPER_HEADER = 8
#: Largest WRAPPER payload we accept; a bigger length field means the stream is out of step.
MAX_WRAPPER_PAYLOAD = 0xFFFF
#: HDLC frame length field is 11 bits.
MAX_HDLC_FRAME = 0x7FF + 2

_FCS_TABLE: list[int] = []
for _i in range(256):
    _v = _i
    for _ in range(8):
        _v = (_v >> 1) ^ 0x8408 if _v & 1 else _v >> 1
    _FCS_TABLE.append(_v)


def fcs16(data: bytes | bytearray | memoryview) -> int:
    """HDLC frame check sequence (CRC-16/X.25) as transmitted (low byte first)."""
    fcs = 0xFFFF
    table = _FCS_TABLE
    for b in data:
        fcs = (fcs >> 8) ^ table[(fcs ^ b) & 0xFF]
    return fcs ^ 0xFFFF


def _address_length(buf: bytes | bytearray, start: int, limit: int) -> int:
    """Length of an HDLC address field: bytes up to and including the one with bit 0 set."""
    for n in range(4):
        i = start + n
        if i >= limit:
            return 0
        if buf[i] & 1:
            return n + 1 if n in (0, 1, 3) else 0
    return 0


def decode_hdlc_address(raw: bytes | bytearray) -> int:
    """Decode an HDLC address field (1, 2 or 4 bytes, 7 bits each) into its integer value."""
    value = 0
    for b in raw:
        value = (value << 7) | (b >> 1)
    return value


@dataclass(frozen=True, slots=True)
class HdlcFrame:
    """One whole HDLC frame with the addresses already decoded (for routing)."""

    raw: bytes
    destination: int
    source: int
    control: int

    @property
    def segmented(self) -> bool:
        return bool(self.raw[1] & 0x08)


F = TypeVar("F")


class _FrameReader(Generic[F]):
    """A byte buffer that yields whole frames and counts what it had to skip."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.discarded_bytes = 0

    def feed(self, data: bytes) -> list[F]:
        self._buf += data
        frames: list[F] = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def reset(self) -> None:
        self.discarded_bytes += len(self._buf)
        self._buf.clear()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def _skip(self, n: int) -> None:
        del self._buf[:n]
        self.discarded_bytes += n

    def _next(self) -> F | None:  # pragma: no cover - abstract
        raise NotImplementedError


class HdlcFrameReader(_FrameReader[HdlcFrame]):
    """Incremental HDLC frame splitter (ISO/IEC 13239 frame format type 3)."""

    def _next(self) -> HdlcFrame | None:
        buf = self._buf
        while buf:
            if buf[0] != HDLC_FLAG:
                nxt = buf.find(HDLC_FLAG, 1)
                self._skip(nxt if nxt > 0 else len(buf))
                continue
            # Back-to-back flags (closing flag of one frame doubling as opening of none).
            if len(buf) >= 2 and buf[1] == HDLC_FLAG:
                self._skip(1)
                continue
            if len(buf) < 3:
                return None
            if buf[1] & 0xF0 != 0xA0:
                self._skip(1)
                continue
            length = ((buf[1] & 0x07) << 8) | buf[2]
            total = length + 2
            if length < 7:
                self._skip(1)
                continue
            if len(buf) < total:
                # Maybe a false start (the tail of an old frame): a whole, valid frame further
                # on must not wait behind it for bytes that will never come.
                later = self._valid_frame_after(1)
                if later < 0:
                    return None
                self._skip(later)
                continue
            if buf[total - 1] != HDLC_FLAG or not self._checksums_ok(buf, length):
                self._skip(1)
                continue
            raw = bytes(buf[:total])
            del buf[:total]
            dst_len = _address_length(raw, 3, total - 1)
            src_len = _address_length(raw, 3 + dst_len, total - 1) if dst_len else 0
            dst = decode_hdlc_address(raw[3:3 + dst_len])
            src = decode_hdlc_address(raw[3 + dst_len:3 + dst_len + src_len])
            control = raw[3 + dst_len + src_len] if src_len else 0
            return HdlcFrame(raw, dst, src, control)
        return None

    def _valid_frame_after(self, start: int) -> int:
        buf = self._buf
        j = buf.find(HDLC_FLAG, start)
        while j >= 0 and len(buf) - j >= 9:
            if buf[j + 1] & 0xF0 == 0xA0:
                length = ((buf[j + 1] & 0x07) << 8) | buf[j + 2]
                end = j + length + 1
                if length >= 7 and end < len(buf) and buf[end] == HDLC_FLAG and self._checksums_ok(buf[j:], length):
                    return j
            j = buf.find(HDLC_FLAG, j + 1)
        return -1

    @staticmethod
    def _checksums_ok(buf: bytearray, length: int) -> bool:
        body = memoryview(buf)[1:1 + length]
        try:
            fcs = fcs16(body[:-2])
            if body[-2] | (body[-1] << 8) != fcs:
                return False
            # Header check sequence, present when the frame carries information.
            dst_len = _address_length(buf, 3, length + 1)
            if not dst_len:
                return False
            src_len = _address_length(buf, 3 + dst_len, length + 1)
            if not src_len:
                return False
            hcs_end = 2 + dst_len + src_len + 1  # format(2) + addresses + control, within body
            if length > hcs_end + 2:
                hcs = fcs16(body[:hcs_end])
                return body[hcs_end] | (body[hcs_end + 1] << 8) == hcs
            return True
        finally:
            body.release()


@dataclass(frozen=True, slots=True)
class WrapperFrame:
    raw: bytes
    source: int
    destination: int

    @property
    def payload(self) -> bytes:
        return self.raw[WRAPPER_HEADER:]


class WrapperFrameReader(_FrameReader[WrapperFrame]):
    """Incremental splitter for the DLMS WRAPPER (IEC 62056-47) TCP profile."""

    def _next(self) -> WrapperFrame | None:
        buf = self._buf
        while len(buf) >= WRAPPER_HEADER:
            if ((buf[0] << 8) | buf[1]) != WRAPPER_VERSION:
                nxt = buf.find(b"\x00\x01", 1)
                self._skip(nxt if nxt > 0 else len(buf) - 1)
                continue
            total = WRAPPER_HEADER + ((buf[6] << 8) | buf[7])
            if len(buf) < total:
                return None
            raw = bytes(buf[:total])
            del buf[:total]
            return WrapperFrame(raw, (raw[2] << 8) | raw[3], (raw[4] << 8) | raw[5])
        return None
