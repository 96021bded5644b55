"""GET-with-list replies that come in data blocks, read by MeterSession over real sockets.

A meter whose negotiated PDU is small (128-256 bytes is common) answers a list too large for one
PDU with Get-Response-With-Datablock (IEC 62056-5-3): each block is ``c4 02 <invoke>
<last-block> <block-number> 00 <raw-data>``, and the raw data of all blocks together is the list
result (count, then a Get-Data-Result each). The session used to time out on them: its hand-built
request left gurux's settings saying "not a GET", so the next-block request went out as four
bytes no meter answers. Here a fake meter written from the standard (not from gurux) sends such
blocks over TCP, and the simulator does the same over WRAPPER and HDLC.
"""
from __future__ import annotations

import asyncio
import struct

import pytest

from tb_dlms.protocol import axdr
from tb_dlms.protocol.errors import MalformedReply
from tb_dlms.protocol.readings import AttributeRef
from tb_dlms.protocol.session import MeterSession
from tb_dlms.protocol.settings import Authentication, Interface, MeterSettings, Secret, Security
from tb_dlms.simulator.simulator import Simulator
from tb_dlms.simulator.spec import MeterSpec

SERIAL = AttributeRef.of("0.0.96.1.0.255", 1)
MISSING = AttributeRef.of("0.0.96.1.1.255", 1)
COUNTER = AttributeRef.of("0.0.96.14.0.255", 1)
REFS = [SERIAL, MISSING, COUNTER]
#: The list result the fake meter sends: the serial, object-undefined (4), a uint32.
SERIAL_TEXT = b"TBDLMS-SERIAL-01"
RESULT = (b"\x03"
          + b"\x00" + axdr.octets(SERIAL_TEXT)
          + b"\x01\x04"
          + b"\x00" + axdr.integer(axdr.DataType.UINT32, 123456))
#: AARE accepting a plain LN association: conformance get, multiple-references,
#: block-transfer-with-get (bits 19, 14, 11 of the 24-bit string); max PDU 128; VAA name 7.
AARE = bytes.fromhex("6129a109060760857405080101a203020100a305a103020100"
                     "be10040e0800065f1f0400001210" "0080" "0007")
RLRE = bytes.fromhex("6303800100")

REGISTERS = [AttributeRef.of(o) for o in (
    "1.0.32.7.0.255", "1.0.52.7.0.255", "1.0.72.7.0.255", "1.0.31.7.0.255", "1.0.51.7.0.255",
    "1.0.71.7.0.255", "1.0.14.7.0.255", "1.0.1.7.0.255", "1.0.1.8.0.255", "1.0.2.8.0.255",
)]
OBJECT_LIST = AttributeRef.of("0.0.40.0.0.255", 15, 2)
UNDEFINED = AttributeRef.of("0.0.96.99.0.255", 1)  # no such object in the simulator


def _block(invoke: int, number: int, last: bool, data: bytes) -> bytes:
    """Get-Response-With-Datablock: last-block, block-number, result raw-data [0] octet string."""
    return (bytes((0xC4, 0x02, invoke, 1 if last else 0)) + struct.pack(">I", number) + b"\x00"
            + axdr.encode_length(len(data)) + data)


class StandardMeter:
    """A WRAPPER meter on loopback that answers a GET-with-list with ``RESULT`` in given blocks."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> StandardMeter:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                version, client, server, length = struct.unpack(">HHHH", await reader.readexactly(8))
                apdu = await reader.readexactly(length)
                self.requests.append(apdu)
                reply = self._answer(apdu)
                if reply is not None:
                    writer.write(struct.pack(">HHHH", version, server, client, len(reply)) + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, apdu: bytes) -> bytes | None:
        if apdu[0] == 0x60:  # AARQ
            return AARE
        if apdu[0] == 0x62:  # RLRQ
            return RLRE
        if apdu[:2] == b"\xc0\x03":  # GET-Request-With-List: the first block
            return _block(apdu[2], 1, len(self.pieces) == 1, self.pieces[0])
        if apdu[:2] == b"\xc0\x02":  # GET-Request-Next: the block after the one it acknowledges
            number = struct.unpack(">I", apdu[3:7])[0] + 1
            return _block(apdu[2], number, number == len(self.pieces), self.pieces[number - 1])
        return None


def _read(pieces: list[bytes], refs: list[AttributeRef]):
    async def go():
        async with StandardMeter(pieces) as meter:
            session = MeterSession(MeterSettings(host="127.0.0.1", port=meter.port, timeout=3.0, retries=0,
                                                 max_pdu_size=128, name="standard"))
            try:
                return await session.read(refs), meter.requests
            finally:
                await session.close()

    return asyncio.run(go())


@pytest.mark.parametrize("cuts", [
    (7, 23),  # inside the serial's octet string; between the counter's choice byte and its value
    (1,),  # the count alone in the first block
    (21,),  # the error result (01 04) split over two blocks
], ids=["3-blocks", "count-alone", "split-error"])
def test_list_result_in_standard_data_blocks(cuts):
    bounds = (0, *cuts, len(RESULT))
    pieces = [RESULT[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    readings, requests = _read(pieces, REFS)
    assert readings[0].ok and readings[0].value == SERIAL_TEXT.decode()
    assert not readings[1].ok and "object-undefined" in readings[1].error
    assert readings[2].ok and readings[2].value == 123456
    # One GET-with-list, then one GET-Request-Next per further block, each acknowledging the last
    # block received (invoke id unchanged).
    gets = [r for r in requests if r[0] == 0xC0]
    assert gets[0][:2] == b"\xc0\x03" and gets[0][3] == len(REFS)
    assert [r[:3] for r in gets[1:]] == [b"\xc0\x02" + gets[0][2:3]] * (len(pieces) - 1)
    assert [struct.unpack(">I", r[3:7])[0] for r in gets[1:]] == list(range(1, len(pieces)))


def test_list_result_cut_short_in_its_last_block_names_the_attribute():
    """gurux takes a value that ends early for "no value"; the session decodes the assembled
    raw data itself and refuses it, naming the attribute whose value was cut."""
    short = RESULT[:-2]  # the counter's uint32 holds two of its four bytes
    with pytest.raises(MalformedReply) as err:
        _read([short[:10], short[10:]], REFS)
    assert str(COUNTER) in str(err.value) and str(SERIAL) not in str(err.value)


@pytest.fixture(scope="module")
def sim():
    specs = [MeterSpec("w128", max_pdu=128), MeterSpec("h128", interface="hdlc", max_pdu=128),
             MeterSpec("w64", max_pdu=64), MeterSpec("h64", interface="hdlc", max_pdu=64),
             MeterSpec("g128", auth="high_gmac", max_pdu=128)]
    with Simulator(specs) as simulator:
        yield simulator


def _settings(sim: Simulator, name: str, pdu: int) -> MeterSettings:
    spec = sim.meter(name).spec
    kw: dict = {}
    if spec.auth == "high_gmac":
        kw = dict(authentication=Authentication.HIGH_GMAC, client_address=spec.client_address,
                  security=Security(b"TBDLMS01", Secret(spec.block_cipher_key), Secret(spec.authentication_key)))
    return MeterSettings(host="127.0.0.1", port=sim.port_of(name), interface=Interface(spec.interface),
                         timeout=3.0, retries=0, max_pdu_size=pdu, name=name, **kw)


@pytest.mark.parametrize("name", ["w128", "h128", "g128"])
def test_simulator_list_reply_in_blocks(sim, name):
    """The reproduction: a register and the association's object list (over a kilobyte) in one
    GET-with-list, PDU 128: the reply takes many blocks (and HDLC segments)."""
    refs = [REGISTERS[0], OBJECT_LIST, UNDEFINED, REGISTERS[3]]

    async def go():
        session = MeterSession(_settings(sim, name, 128))
        try:
            await session.connect()
            before = session.stats.round_trips
            readings = await session.read(refs)
            trips = session.stats.round_trips - before
            again = await session.read(refs)  # the association is fine after a long transfer
            alone = await session.get(OBJECT_LIST)
        finally:
            await session.close()
        return readings, trips, again, alone

    readings, trips, again, alone = asyncio.run(go())
    assert trips > 8
    voltage, objects, missing, current = readings
    assert voltage.ok and voltage.unit == "V" and 200 < voltage.value < 260
    assert current.ok and current.unit == "A"
    assert not missing.ok and "object-undefined" in missing.error
    assert objects.ok and objects.value == alone.value and len(objects.value) > 20
    assert [r.ok for r in again] == [True, True, False, True] and again[1].value == objects.value


@pytest.mark.parametrize("name,pdu", [("w128", 128), ("h128", 128), ("w64", 64), ("h64", 64), ("g128", 128)])
def test_ten_registers_with_scalers_at_a_small_pdu(sim, name, pdu):
    """Ten registers and their scalers by GET-with-list at a small negotiated PDU read the same
    as with a large one. Below 112 bytes the requests are split (ten descriptors do not fit):
    gurux's own split failed with a TypeError there."""
    async def go():
        small = MeterSession(_settings(sim, name, pdu))
        try:
            got = await small.read(REGISTERS)
            negotiated = small._client.settings.maxPduSize if small._client else None
        finally:
            await small.close()
        return got, negotiated

    readings, negotiated = asyncio.run(go())
    assert negotiated == pdu
    assert all(r.ok for r in readings), [r.error for r in readings]
    assert [(r.unit, r.scaler) for r in readings] == [
        ("V", -1), ("V", -1), ("V", -2), ("A", -3), ("A", -3), ("A", -3), ("Hz", -2), ("W", 0), ("Wh", 0), ("Wh", 0)]
    assert all(isinstance(r.value, (int, float)) for r in readings)
