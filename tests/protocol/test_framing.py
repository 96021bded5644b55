"""Frames are found by their length field; junk and tails of old frames are skipped, not fatal."""
from hypothesis import given, settings, strategies as st

from gurux_dlms import GXDLMSClient
from gurux_dlms.enums import Authentication, InterfaceType

from tb_dlms.protocol.framing import HdlcFrameReader, WrapperFrameReader, fcs16


def _snrm(server=1, client=16, size=1):
    c = GXDLMSClient(True, client, server, Authentication.NONE, None, InterfaceType.HDLC)
    c.setServerAddressSize(size)
    return bytes(c.snrmRequest())


def _aarq_hdlc():
    c = GXDLMSClient(True, 16, 1, Authentication.NONE, None, InterfaceType.HDLC)
    return bytes(c.aarqRequest()[0])


def test_fcs_matches_gurux_frames():
    frame = _snrm()
    body = frame[1:-1]
    assert fcs16(body[:-2]) == body[-2] | (body[-1] << 8)


def test_frame_split_across_reads_and_joined():
    a, b = _snrm(), _aarq_hdlc()
    r = HdlcFrameReader()
    assert r.feed(a[:3]) == []
    got = r.feed(a[3:] + b)
    assert [f.raw for f in got] == [a, b]
    assert r.discarded_bytes == 0


def test_addresses_decoded_for_routing():
    f = HdlcFrameReader().feed(_snrm(server=GXDLMSClient.getServerAddress(1, 17, 4), size=4))[0]
    assert f.destination == (1 << 14) | 17
    assert f.source == 16
    f = HdlcFrameReader().feed(_snrm(server=GXDLMSClient.getServerAddress(1, 5, 2), size=2))[0]
    assert f.destination == (1 << 7) | 5


def test_leftover_tail_of_timed_out_frame_is_discarded():
    old, new = _aarq_hdlc(), _snrm()
    r = HdlcFrameReader()
    got = r.feed(old[len(old) // 2:] + new)
    assert [f.raw for f in got] == [new]
    assert r.discarded_bytes == len(old) - len(old) // 2


def test_flag_inside_checksum_does_not_split_frame():
    # Find a frame whose FCS contains 0x7E by varying the server address.
    for server in range(1, 0x3FFF):
        frame = _snrm(server=server, size=2 if server > 0x7F else 1)
        if 0x7E in frame[-3:-1]:
            break
    else:  # pragma: no cover
        raise AssertionError("no frame with 0x7E in its FCS found")
    assert [f.raw for f in HdlcFrameReader().feed(frame)] == [frame]


def test_corrupted_frame_is_skipped_and_next_found():
    bad = bytearray(_aarq_hdlc())
    bad[10] ^= 0xFF
    good = _snrm()
    r = HdlcFrameReader()
    assert [f.raw for f in r.feed(bytes(bad) + good)] == [good]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_random_bytes_never_raise_and_memory_bounded(chunks):
    r, w = HdlcFrameReader(), WrapperFrameReader()
    for c in chunks:
        r.feed(c)
        w.feed(c)
    frame = _snrm()
    # Whatever came before, a valid frame after a flag is found.
    assert frame in [f.raw for f in r.feed(b"\x7e" + frame)]
    assert r.pending < 4096


def test_wrapper_frames_and_resync():
    c = GXDLMSClient(True, 16, 1, Authentication.NONE, None, InterfaceType.WRAPPER)
    a = bytes(c.aarqRequest()[0])
    r = WrapperFrameReader()
    assert r.feed(b"\xff\xff" + a[:5]) == []
    got = r.feed(a[5:] + a)
    assert [f.raw for f in got] == [a, a]
    assert got[0].source == 16 and got[0].destination == 1
    assert r.discarded_bytes == 2


def test_false_start_with_long_length_does_not_hold_back_a_valid_frame():
    # "7E A0 7E" reads as the start of a 126-byte frame; the real frame after it must not wait.
    frame = _snrm()
    r = HdlcFrameReader()
    assert [f.raw for f in r.feed(b"\x7e\xa0" + b"\x7e" + frame)] == [frame]
