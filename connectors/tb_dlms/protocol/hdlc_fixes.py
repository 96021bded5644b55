"""HDLC information fields above 128 bytes and windows above one frame with gurux-dlms 1.0.203.

Long frames: ``GXDLMS.getHdlcFrame`` puts the high bits of the 11-bit frame length in the format
field from the information and addresses only, without the 7 bytes of format, control and
checksums: a frame whose length crosses a multiple of 256 that way goes out claiming 256 bytes
less than it has (seen with a 1024-byte information field: 1030 bytes announced as 774), and the
other side finds no valid frame. ``_get_hdlc_frame`` writes the length it really has (both sides:
our requests, and the simulator's replies).

Windows:

With a receive window of k, a meter sends up to k I-frames of a long reply back to back (the poll/
final bit set only on the last one) and waits for one RR. On a 9600-baud line that saves k - 1
turnarounds per window; the DLMS UA's own read-out measurement used window 7.

gurux's client gets two things wrong there (GXDLMSSettings.checkFrame and getReceiverReady):

- the third frame of a window is refused as "Invalid HDLC Frame" (a typo assigns the new
  sequence to a local variable, ``ReceiverFrame``, not the attribute), and a final frame after
  one without the final bit raises UnboundLocalError on that same name;
- the RR after a window acknowledges one frame (N(R) + 1) instead of all of them, so a meter that
  honours N(R) resends the window.

The fix: on the client, with a window above one, an I-frame is accepted when its N(S) follows the
last one received, and our next N(R) is set from it. ``senderFrame``'s N(R) bits hold the N(S) of
the last frame received (gurux adds one when it next sends), which is what window 1 keeps anyway.
"""
from __future__ import annotations

from typing import Any

from gurux_dlms.GXDLMS import GXDLMS
from gurux_dlms.GXDLMSSettings import GXDLMSSettings

from .framing import _address_length, fcs16

_original = GXDLMSSettings.checkFrame
_original_frame = GXDLMS.getHdlcFrame.__func__


def _send_sequence(control: int) -> int:
    return (control >> 1) & 7


def final(control: int) -> bool:
    """The poll/final bit of an HDLC control field: the last frame of a window."""
    return bool(control & 0x10)


def _check_frame(self: Any, frame_: int, xml: Any) -> Any:
    if (not self.isServer and not xml and (frame_ & 1) == 0 and self.hdlc.windowSizeRX != 1
            and _send_sequence(frame_) == (_send_sequence(self.receiverFrame) + 1) & 7):
        self.receiverFrame = frame_
        self.senderFrame = (self.senderFrame & 0x1F) | (_send_sequence(frame_) << 5)
        return True
    return _original(self, frame_, xml)


def rebuilt(frame: bytes | bytearray, clear_final: bool = False) -> bytes:
    """The frame with its length field from its real size (and the final bit cleared if asked),
    header and frame checksums recomputed."""
    raw = bytearray(frame)
    length = len(raw) - 2
    raw[1] = (raw[1] & 0xF8) | ((length >> 8) & 0x07)
    raw[2] = length & 0xFF
    dst = _address_length(raw, 3, length + 1)
    src = _address_length(raw, 3 + dst, length + 1)
    control = 3 + dst + src
    if clear_final:
        raw[control] &= ~0x10
    if length > control + 2:  # an information field: a header check sequence precedes it
        hcs = fcs16(raw[1:control + 1])
        raw[control + 1], raw[control + 2] = hcs & 0xFF, hcs >> 8
    fcs = fcs16(raw[1:length - 1])
    raw[length - 1], raw[length] = fcs & 0xFF, fcs >> 8
    return bytes(raw)


def _get_hdlc_frame(cls: Any, settings: Any, frame_: int, data: Any) -> Any:
    raw = _original_frame(cls, settings, frame_, data)
    if len(raw) - 2 != (((raw[1] & 0x07) << 8) | raw[2]):
        return bytearray(rebuilt(raw))
    return raw


def install() -> None:
    """Patch gurux's client and frame builder (idempotent). Done on import: the session relies on it."""
    if GXDLMSSettings.checkFrame is not _check_frame:
        GXDLMSSettings.checkFrame = _check_frame
        GXDLMS.getHdlcFrame = classmethod(_get_hdlc_frame)


install()
