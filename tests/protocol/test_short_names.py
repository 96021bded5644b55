"""Short-name PDUs against published frames, not only against gurux's own server.

gurux's client and our simulator could agree on a wrong encoding; these vectors come from a
third-party PDU translator's tests (tohasan/pdu-translator, ``XmlPduTranslatorSpec``: a
ReadResponse in data blocks as a real SN meter sent it, and a ReadRequest with a range selector),
and are checked against our encoder/decoder, gurux's client encoder, and the simulator's reply shape.
"""
from __future__ import annotations

import datetime as dt

from gurux_dlms import GXByteBuffer, GXDLMSClient
from gurux_dlms.enums import Authentication as GxAuth, InterfaceType, ObjectType

from tb_dlms.protocol import gurux_compat, short_names as sn
from tb_dlms.protocol.axdr import AccessResult
from tb_dlms.protocol.obis import ObisCode
from tb_dlms.protocol.profile import range_selector
from tb_dlms.simulator.meter import Meter
from tb_dlms.simulator.spec import MeterSpec

#: ReadRequest, parameterised access to short name C008 (a profile's buffer: base C000 + 8),
#: selector 1 (range_descriptor on the clock 0.0.1.0.0.255, attribute 2).
PUBLISHED_READ_REQUEST = bytes.fromhex(
    "050104C008010204020412000809060000010000FF0F02120000090C07DA041E050E2522618000FF"
    "090CFFFFFFFFFFFFFFFFFF8000FF0100")
#: ReadResponse, one data-block-result: not the last block, block 1, 100 bytes of raw data that
#: begin with the encoded SEQUENCE OF CHOICE (count 1, choice data, array of 0x55 rows).
PUBLISHED_READ_RESPONSE = bytes.fromhex(
    "0C01020000016401000155021D090C07E10418010E0120FF8000001204201101120000"
    "150000000000000000150000000000000000150000000000000000150000000000000000"
    "150000000000000000150000000000000000150000000000000000150000000000000000")


def _sn_client() -> GXDLMSClient:
    return GXDLMSClient(False, 16, 1, GxAuth.NONE, None, InterfaceType.WRAPPER)


def test_read_request_with_selector_matches_the_published_frame():
    selector = PUBLISHED_READ_REQUEST[5:]
    assert sn.read_request_pdu([(0xC008, selector[0], selector[1:])]) == PUBLISHED_READ_REQUEST
    # gurux's SN client (what the session sends for one name) builds the same PDU.
    frame = bytes(_sn_client()._read(0xC008, ObjectType.NONE, 1, GXByteBuffer(selector))[0])
    assert frame[8:] == PUBLISHED_READ_REQUEST


def test_our_range_selector_has_the_published_layout():
    start = dt.datetime(2010, 4, 30, 14, 37, 34, tzinfo=dt.timezone.utc)
    selector = range_selector(start, start)
    ours = sn.read_request_pdu([(0xC008, selector[0], selector[1:])])
    # Same envelope, selector, restricting object (clock, attribute 2, data index 0), two date-times.
    assert ours[:34] == PUBLISHED_READ_REQUEST[:34]
    assert ours[-2:] == PUBLISHED_READ_REQUEST[-2:] == b"\x01\x00"
    assert len(ours) == len(PUBLISHED_READ_REQUEST)


def test_data_block_result_decodes_as_published():
    client = _sn_client()
    [block] = sn.read_results(client.settings, PUBLISHED_READ_RESPONSE)
    assert isinstance(block, sn.DataBlock)
    assert (block.last, block.number, len(block.raw)) == (False, 1, 0x64)
    # Inside: the SEQUENCE OF CHOICE itself, count and choice included.
    assert block.raw[:4] == bytes((0x01, sn.DATA, 0x01, 0x55))


def test_simulator_blocks_have_the_published_shape():
    """The simulated SN meter puts the count and choice in the raw data, as the real one did."""
    meter = Meter(MeterSpec(name="sn-shape", referencing="sn"))
    server = meter.new_server("wrapper")
    client = _sn_client()
    client.maxReceivePDUSize = 256
    server.handle(bytes(client.aarqRequest()[0]))
    base = next(o.shortName for o in server.sn.table.objects if o.logicalName == "1.0.99.1.0.255")
    reply = server.handle(bytes(client._read(base + 8, ObjectType.NONE, 1)[0]))
    [block] = sn.read_results(client.settings, reply[8:])
    assert isinstance(block, sn.DataBlock) and block.number == 1 and not block.last
    assert block.raw[:3] == bytes((0x01, sn.DATA, 0x01))


def test_list_response_keeps_a_slot_for_each_failed_name():
    client = _sn_client()
    pdu = bytes.fromhex("0C03" "001208F5" "0104" "000906" "313233343536")
    assert sn.read_results(client.settings, pdu) == [2293, AccessResult(4), bytearray(b"123456")]


def test_short_names_from_the_object_list():
    names = sn.ShortNames.from_object_list([
        [0xC000, 7, 1, bytes((1, 0, 99, 1, 0, 255))],
        [0x1500, 70, 0, bytes((0, 0, 96, 3, 10, 255))],
        [0x0100, 3, 0, bytes((1, 0, 32, 7, 0, 255))],
    ])
    assert names.attribute(ObisCode.parse("1.0.99.1.0.255"), 7, 2) == 0xC008
    assert names.attribute(ObisCode.parse("1.0.32.7.0.255"), 3, 3) == 0x0110
    # Disconnect control: first method at base + 0x20 (Blue Book), remote_reconnect the second.
    assert names.method(ObisCode.parse("0.0.96.3.10.255"), 70, 2) == 0x1528
    # The association SN is always at FA00, and LN-style refs to it (class 15) still resolve.
    assert names.attribute(sn.ASSOCIATION_OBIS, 15, 1) == 0xFA00
    for obis, class_id, code in (("9.9.9.9.9.9", 3, sn.OBJECT_UNDEFINED), ("1.0.32.7.0.255", 1, sn.CLASS_INCONSISTENT)):
        try:
            names.attribute(ObisCode.parse(obis), class_id, 2)
        except sn.ShortNameError as exc:
            assert exc.code == code
        else:  # pragma: no cover
            raise AssertionError(f"{obis} class {class_id} resolved")


def test_block_transfer_workarounds_are_named_and_tied_to_the_gurux_version():
    from importlib.metadata import version

    assert version("gurux-dlms") == gurux_compat.GURUX_VERSION
    assert set(gurux_compat.SN_BLOCK_WORKAROUNDS) == {"sn-block-total-count", "sn-block-command"}
    from gurux_dlms.GXReplyData import GXReplyData

    assert hasattr(GXReplyData, "setTotalCount")
