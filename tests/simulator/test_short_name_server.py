"""The simulator's SN services (ReadRequest / WriteRequest), byte for byte, in process."""
from __future__ import annotations

from gurux_dlms import GXDLMSClient
from gurux_dlms.enums import Authentication, InterfaceType

from tb_dlms.protocol import short_names as sn
from tb_dlms.protocol.axdr import AccessResult
from tb_dlms.simulator.meter import Meter
from tb_dlms.simulator.spec import MeterSpec


def _associated(pdu: int = 256, **spec):
    meter = Meter(MeterSpec(name="sn-server", referencing="sn", **spec))
    server = meter.new_server("wrapper")
    client = GXDLMSClient(False, 16, 1, Authentication.NONE, None, InterfaceType.WRAPPER)
    client.maxReceivePDUSize = pdu
    client.parseAareResponse(_reply_data(server.handle(bytes(client.aarqRequest()[0]))))
    return meter, server, client


def _reply_data(frame: bytes):
    from gurux_dlms import GXByteBuffer
    return GXByteBuffer(frame[8:])


def _ask(server, client, pdu: bytes) -> bytes:
    frame = bytes(client.settings.clientAddress.to_bytes(2, "big"))
    header = b"\x00\x01" + frame + b"\x00\x01" + len(pdu).to_bytes(2, "big")
    return server.handle(header + pdu)[8:]


def _base(server, ln: str) -> int:
    return next(o.shortName for o in server.sn.table.objects if o.logicalName == ln)


def test_object_list_unknown_names_and_a_list_with_a_gap():
    _, server, client = _associated(pdu=1024)
    listing = sn.read_results(client.settings, _ask(server, client, sn.read_request_pdu([(0xFA08, None, None)])))[0]
    names = sn.ShortNames.from_object_list(listing)
    assert len(names.objects) >= 20 and names.objects[bytes((0, 0, 40, 0, 0, 255))].class_id == 12
    volt = _base(server, "1.0.32.7.0.255")
    got = sn.read_results(client.settings, _ask(server, client, sn.read_request_pdu(
        [(volt + 8, None, None), (0x7FF0, None, None), (volt + 16, None, None)])))
    assert isinstance(got[0], int) and got[1] == AccessResult(4) and list(got[2]) == [-1, 35]


def test_write_refused_for_a_read_only_attribute_and_method_by_write():
    meter, server, client = _associated(auth="low", client_address=32)
    # The public client (16) may not operate the disconnector nor write a register.
    base = _base(server, "0.0.96.3.10.255")
    reply = _ask(server, client, bytes((0x06, 1, 0x02)) + (base + 0x20).to_bytes(2, "big") + bytes((1, 0x0F, 0)))
    assert reply == bytes((0x0D, 1, 1, 3)) and meter.output_state is True


def test_blocks_must_be_acknowledged_in_order():
    _, server, client = _associated()
    buffer = _base(server, "1.0.99.1.0.255") + 8
    first = sn.read_results(client.settings, _ask(server, client, sn.read_request_pdu([(buffer, None, None)])))[0]
    assert isinstance(first, sn.DataBlock) and first.number == 1
    wrong = _ask(server, client, bytes((0x05, 1, 0x05, 0x00, 0x07)))
    assert sn.read_results(client.settings, wrong) == [AccessResult(19)]  # data-block-number-invalid
