"""The simulator's GET-with-list reply in data blocks, checked byte by byte against the standard.

No gurux client here: the requests are built by hand and the replies read as IEC 62056-5-3 lays
them out, so this fails if the simulator speaks a dialect only gurux understands. gurux 1.0.203's
server sent a list too large for the PDU as ``c4 03`` (with-list) with a block body and no
raw-data choice, and kept no rest for the next-block requests (fix ``get_with_list_in_blocks``).
"""
from __future__ import annotations

import socket
import struct

import pytest

from tb_dlms.protocol import axdr
from tb_dlms.protocol.framing import WrapperFrameReader
from tb_dlms.protocol.obis import ObisCode
from tb_dlms.simulator import gurux_fixes
from tb_dlms.simulator.simulator import Simulator
from tb_dlms.simulator.spec import MeterSpec

PDU = 128
#: AARQ, LN referencing, no security; proposed conformance 00401E5D, max receive PDU 128.
AARQ = bytes.fromhex("601da109060760857405080101be10040e01000000065f1f0400401e5d" + f"{PDU:04x}")
INVOKE = 0xC1  # invoke id 1, high priority, confirmed
ITEMS = [
    (3, "1.0.32.7.0.255", 2),  # voltage L1
    (15, "0.0.40.0.0.255", 2),  # the association's object list: over a kilobyte
    (1, "0.0.96.99.0.255", 2),  # no such object
    (3, "1.0.32.7.0.255", 3),  # its scaler and unit
]


@pytest.fixture(scope="module")
def meter():
    with Simulator([MeterSpec("w-list-blocks", max_pdu=PDU)]) as sim:
        yield sim.port_of("w-list-blocks")


class Wire:
    """WRAPPER framing by hand: client wPort 16, server wPort 1."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.frames = WrapperFrameReader()

    def ask(self, apdu: bytes) -> bytes:
        self.sock.sendall(struct.pack(">HHHH", 1, 16, 1, len(apdu)) + apdu)
        while True:
            chunk = self.sock.recv(4096)
            assert chunk, "the meter closed the connection"
            frames = self.frames.feed(chunk)
            if frames:
                return bytes(frames[0].raw[8:])

    def close(self) -> None:
        self.sock.close()


def _list_request() -> bytes:
    return axdr.get_with_list_pdu([(c, bytes(ObisCode.parse(ln)), a) for c, ln, a in ITEMS], INVOKE)


def _read_blocks(wire: Wire) -> tuple[bytes, int]:
    """(raw data of all blocks, number of blocks), checking each block's layout."""
    apdu, raw, expected = wire.ask(_list_request()), b"", 1
    while True:
        assert len(apdu) <= PDU
        # Get-Response-With-Datablock: tag, choice 2, invoke id, last-block, block-number,
        # result choice 0 (raw-data), octet string.
        assert apdu[:3] == bytes((0xC4, 0x02, INVOKE)), apdu[:12].hex()
        last, number, choice = apdu[3], struct.unpack(">I", apdu[4:8])[0], apdu[8]
        assert (number, choice) == (expected, 0) and last in (0, 1)
        size, start = apdu[9], 10
        if size & 0x80:
            start = 10 + (size & 0x7F)
            size = int.from_bytes(apdu[10:start], "big")
        assert len(apdu) == start + size
        raw += apdu[start:]
        if last:
            return raw, number
        apdu = wire.ask(bytes((0xC0, 0x02, INVOKE)) + struct.pack(">I", number))
        expected += 1


def test_list_too_large_for_the_pdu_comes_as_get_response_with_datablock(meter):
    wire = Wire(meter)
    try:
        assert wire.ask(AARQ)[0] == 0x61
        raw, blocks = _read_blocks(wire)
        # Twice on one association: no state (a half-listed object list) is left behind.
        raw_again, _ = _read_blocks(wire)
        # A small list still fits in one Get-Response-With-List.
        small = axdr.get_with_list_pdu([(3, bytes(ObisCode.parse("1.0.32.7.0.255")), 3)] * 2, INVOKE)
        one = wire.ask(small)
    finally:
        wire.close()
    assert blocks > 8
    voltage, objects, missing, scaler_unit = axdr.parse_list_result(raw)
    assert isinstance(voltage, int) and 2000 < voltage < 2600
    assert missing == axdr.AccessResult(4)  # object-undefined
    assert scaler_unit == [-1, 35]
    # Each entry: {class id, version, logical name, access rights}; the association lists itself.
    assert len(objects) > 20 and all(len(entry) == 4 for entry in objects)
    assert [15, bytes(ObisCode.parse("0.0.40.0.0.255"))] in [[e[0], e[2]] for e in objects]
    assert axdr.parse_list_result(raw_again)[1] == objects
    assert axdr.parse_get_response(one) == (INVOKE, [[-1, 35], [-1, 35]])


def test_the_fix_is_registered_for_the_pinned_gurux():
    assert (gurux_fixes.get_with_list_in_blocks, gurux_fixes.GURUX_VERSION) in gurux_fixes.FIXES
