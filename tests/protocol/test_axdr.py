"""The A-XDR codec against published encodings and gurux, not only against itself."""
from __future__ import annotations

import datetime as dt
import struct

import pytest
from gurux_dlms import GXByteBuffer
from gurux_dlms.enums import DataType as GxDataType
from gurux_dlms.internal._GXCommon import _GXCommon

from tb_dlms.protocol import axdr
from tb_dlms.protocol.axdr import INTEGER_RANGES, DataType, data_type, data_type_name, decode_data
from tb_dlms.protocol.profile import CaptureObject, entry_selector, range_selector
from tb_dlms.protocol.readings import AttributeRef

#: Blue Book (DLMS UA 1000-1) 4.1.5 table 2 "Common data types": type name -> tag.
BLUE_BOOK_TAGS = {
    "null-data": 0, "array": 1, "structure": 2, "boolean": 3, "bit-string": 4, "double-long": 5,
    "double-long-unsigned": 6, "octet-string": 9, "visible-string": 10, "utf8-string": 12, "bcd": 13,
    "integer": 15, "long": 16, "unsigned": 17, "long-unsigned": 18, "compact-array": 19, "long64": 20,
    "long64-unsigned": 21, "enum": 22, "float32": 23, "float64": 24, "date-time": 25, "date": 26, "time": 27,
}
#: The same table's value ranges of the integer types, by the Blue Book's names.
BLUE_BOOK_RANGES = {
    "integer": (-128, 127), "long": (-32768, 32767), "double-long": (-2147483648, 2147483647),
    "unsigned": (0, 255), "long-unsigned": (0, 65535), "double-long-unsigned": (0, 4294967295),
    "long64": (-2**63, 2**63 - 1), "long64-unsigned": (0, 2**64 - 1), "enum": (0, 255),
}
OURS = {"null-data": "none", "bit-string": "bitstring", "double-long": "int32", "double-long-unsigned": "uint32",
        "octet-string": "octet_string", "visible-string": "string", "utf8-string": "string_utf8",
        "integer": "int8", "long": "int16", "unsigned": "uint8", "long-unsigned": "uint16",
        "compact-array": "compact_array", "long64": "int64", "long64-unsigned": "uint64", "date-time": "datetime"}

#: A published A-XDR Data value: from the GBCS use-case message in SmartDCCInnovation/gbcs-parser's
#: tests (test/parser.test.ts): enum 5, a structure of three date-times (all fields not specified;
#: 2014-12-31 23:59:10.00; 2015-01-01 00:00:10.00, deviation and status not specified), integer 0.
GBCS_DATA = bytes.fromhex(
    "1605"
    "0203"
    "090cffffffffffffffffff8000ff"
    "090c07de0c1fff173b0a008000ff"
    "090c07df0101ff00000a008000ff"
    "0f00"
)


def test_tags_are_the_blue_books():
    assert {name: int(data_type(OURS.get(name, name))) for name in BLUE_BOOK_TAGS} == BLUE_BOOK_TAGS


def test_names_and_values_are_guruxs():
    """session.data_type() used gurux's table: config and RPC type names must mean what they did."""
    gurux = {name.lower(): value for name, value in vars(GxDataType).items() if name.isupper()}
    assert {t.name.lower(): int(t) for t in DataType} == gurux
    assert data_type("bool") is DataType.BOOLEAN and data_type_name("Octets") == "octet_string"
    assert data_type(None) is DataType.NONE
    with pytest.raises(ValueError, match="unknown DLMS data type 'uint7'"):
        data_type("uint7")


def test_integer_ranges_are_the_blue_books():
    assert {name: INTEGER_RANGES[OURS.get(name, name)] for name in BLUE_BOOK_RANGES} == BLUE_BOOK_RANGES
    assert all(data_type_name(name) == name for name in INTEGER_RANGES)


def test_published_value_decodes():
    values, end = [], 0
    while end < len(GBCS_DATA):
        value, end = decode_data(GBCS_DATA, end)
        values.append(value)
    assert values == [5, [bytes.fromhex("ffffffffffffffffff8000ff"), bytes.fromhex("07de0c1fff173b0a008000ff"),
                          bytes.fromhex("07df0101ff00000a008000ff")], 0]


def test_published_value_encodes_byte_for_byte():
    stamps = [GBCS_DATA[i + 2:i + 14] for i in (4, 18, 32)]
    encoded = (axdr.integer(DataType.ENUM, 5) + axdr.structure(*(axdr.octets(s) for s in stamps))
               + axdr.integer(DataType.INT8, 0))
    assert encoded == GBCS_DATA


@pytest.mark.parametrize("n, wire", [(0, "00"), (127, "7f"), (128, "8180"), (255, "81ff"), (256, "820100"),
                                     (65535, "82ffff"), (70000, "8400011170")])
def test_length_encoding(n, wire):
    """IEC 61334-6 A-XDR: short form below 128, else 0x80 | number of length bytes, then the length."""
    assert axdr.encode_length(n).hex() == wire
    assert axdr._length(bytes.fromhex(wire), 0) == (n, len(wire) // 2)


def _gurux(tag: int, value) -> bytes:
    buffer = GXByteBuffer()
    _GXCommon.setData(None, buffer, tag, value)
    return bytes(buffer.array())


@pytest.mark.parametrize("name", list(INTEGER_RANGES.keys() - {"bcd"}))
def test_integers_encode_as_gurux_does_and_decode_back(name):
    tag = data_type(name)
    for value in INTEGER_RANGES[name] + (1,):
        wire = axdr.integer(tag, value)
        assert wire == _gurux(tag, value), (name, value)
        assert decode_data(wire, 0) == (value, len(wire))
    with pytest.raises(struct.error):
        axdr.integer(tag, INTEGER_RANGES[name][1] + 1)


def test_containers_and_strings_encode_as_gurux_does():
    assert axdr.boolean(True) == _gurux(GxDataType.BOOLEAN, True)
    assert axdr.octets(b"x" * 300) == _gurux(GxDataType.OCTET_STRING, b"x" * 300)
    rows = [axdr.structure(axdr.octets(b"\x07\xea"), axdr.integer(DataType.UINT32, k)) for k in range(130)]
    wire = axdr.array(rows)
    assert wire[:3] == bytes((DataType.ARRAY, 0x81, 130))
    assert decode_data(wire, 0) == ([[b"\x07\xea", k] for k in range(130)], len(wire))


def test_profile_selectors_keep_their_bytes():
    """range_descriptor {restricting object {class, LN, attribute, data index}, from, to, selected columns}."""
    start = dt.datetime(2026, 3, 29, 0, 45, tzinfo=dt.timezone.utc)
    end = dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.timezone.utc)
    # Sorted by the clock (8, 0.0.1.0.0.255, attribute 2); bounds in UTC, hundredths and status not specified.
    assert range_selector(start, end).hex() == (
        "01" "0204" "0204" "120008" "0906" "0000010000ff" "0f02" "120000"
        "090c" "07ea031d07002d00ff0000ff" "090c" "07ea031d07010000ff0000ff" "0100")
    column = CaptureObject(AttributeRef.of("1.0.1.8.0.255", 3, 2), 3)
    # Local time at UTC+1 with the deviation not specified (0x8000).
    assert range_selector(start, end, column, 60).hex() == (
        "01" "0204" "0204" "120003" "0906" "0100010800ff" "0f02" "120003"
        "090c" "07ea031d07012d00ff8000ff" "090c" "07ea031d07020000ff8000ff" "0100")
    assert entry_selector(3, 0).hex() == "02" "0204" "0600000003" "0600000000" "120001" "120000"
