"""The COSEM date-time codec against published date-times and gurux, not only against itself."""
from __future__ import annotations

import datetime as dt

import pytest
from gurux_dlms import GXByteBuffer, GXDateTime, GXDLMSSettings
from gurux_dlms.enums import DataType as GxDataType
from gurux_dlms.internal._GXCommon import _GXCommon
from gurux_dlms.internal._GXDataInfo import _GXDataInfo

from tb_dlms.protocol import cosem_datetime as cdt
from tb_dlms.protocol.values import decode_datetime

#: From the GBCS message in SmartDCCInnovation/gbcs-parser's tests (test/parser.test.ts):
#: 2014-12-31, day of week, deviation and status not specified, 23:59:10.00 ...
GBCS_2014 = bytes.fromhex("07DE0C1FFF173B0A008000FF")
#: ... and the same message's date-time with every field not specified.
GBCS_NOT_SPECIFIED = bytes.fromhex("FFFFFFFFFFFFFFFFFF8000FF")
#: The clock value of meterkit/cosemlib (lib/database/db_cosem_clock.c): 2002-12-04, a Wednesday
#: (day of week 3), 10:06:11, hundredths not specified, deviation 120 minutes, status OK.
COSEMLIB_CLOCK = bytes.fromhex("07D20C04030A060BFF007800")
CET = dt.timezone(dt.timedelta(hours=1))


def _gurux_decode(raw: bytes) -> dt.datetime:
    buffer = GXByteBuffer()
    buffer.set(bytes((GxDataType.DATETIME,)) + raw)
    return _GXCommon.getData(GXDLMSSettings(False, None), buffer, _GXDataInfo()).value


def test_published_date_time_without_deviation():
    value = cdt.decode(GBCS_2014)
    assert value == cdt.DateTime(dt.datetime(2014, 12, 31, 23, 59, 10), None, cdt.STATUS_NOT_SPECIFIED)
    assert value.utc_offset_min() is None
    assert decode_datetime(GBCS_2014)["iso"] == "2014-12-31T23:59:10"
    assert decode_datetime(GBCS_2014)["deviation"] is None
    # Without a deviation the caller's offset places it: local time at UTC+1 is 22:59:10 UTC.
    assert cdt.to_timestamp(GBCS_2014, 60) == dt.datetime(2014, 12, 31, 22, 59, 10, tzinfo=dt.timezone.utc).timestamp()
    assert cdt.encode(value.local, None, cdt.STATUS_NOT_SPECIFIED)[5:] == GBCS_2014[5:]  # weekday: we always write it


def test_published_not_specified_value():
    assert cdt.NOT_SPECIFIED == GBCS_NOT_SPECIFIED
    assert cdt.DEVIATION_NOT_SPECIFIED.to_bytes(2, "big", signed=True) == GBCS_NOT_SPECIFIED[9:11] == b"\x80\x00"
    assert cdt.decode(GBCS_NOT_SPECIFIED) is None
    assert cdt.to_timestamp(GBCS_NOT_SPECIFIED) is None


def test_published_clock_value_in_both_sign_conventions():
    value = cdt.decode(COSEMLIB_CLOCK)
    assert (value.local, value.deviation, value.status) == (dt.datetime(2002, 12, 4, 10, 6, 11), 120, 0)
    assert decode_datetime(COSEMLIB_CLOCK)["iso"] == "2002-12-04T10:06:11-02:00"  # UTC minus local (gurux)
    assert decode_datetime(COSEMLIB_CLOCK, deviation_utc_minus_local=False)["iso"] == "2002-12-04T10:06:11+02:00"
    assert cdt.encode(value.local, 120, hundredths=False) == COSEMLIB_CLOCK  # weekday 3 included


@pytest.mark.parametrize("raw", [GBCS_2014, COSEMLIB_CLOCK, cdt.from_timestamp(1_782_900_000, 60)])
def test_gurux_reads_the_same_wall_clock(raw):
    ours = cdt.decode(raw)
    gurux = _gurux_decode(raw)
    assert gurux.replace(tzinfo=None) == ours.local
    if ours.deviation is not None:  # gurux counts UTC minus local
        assert gurux.utcoffset() == dt.timedelta(minutes=ours.utc_offset_min(utc_minus_local=True))


def test_gurux_writes_the_same_bytes():
    when = dt.datetime(2026, 7, 1, 12, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    buffer = GXByteBuffer()
    _GXCommon.setData(GXDLMSSettings(False, None), buffer, GxDataType.OCTET_STRING, GXDateTime(when))
    gurux = bytes(buffer.array())[2:]
    ours = cdt.encode_aware(when)
    # gurux leaves the day of week unspecified (0xFF); we write it (1 July 2026 is a Wednesday).
    assert ours[:4] + ours[5:] == gurux[:4] + gurux[5:]
    assert (gurux[4], ours[4]) == (0xFF, 3)


@pytest.mark.parametrize("hexed", [
    "ffff0c1fff173b0a008000ff",  # year not specified
    "07defd1fff173b0a008000ff", "07defe1fff173b0a008000ff", "07deff1fff173b0a008000ff",  # DST end/begin, any month
    "07de0cfdff173b0a008000ff", "07de0cfeff173b0a008000ff", "07de0cffff173b0a008000ff",  # last days, any day
    "07de021eff173b0a008000ff",  # 30 February
    "07de0c1fff183b0a008000ff",  # hour 24
    "07de0c1fff173b64008000ff",  # hundredths 100
    "07de0c1fff173b0a008000",  # 11 bytes
])
def test_no_instant_gives_none(hexed):
    assert cdt.decode(bytes.fromhex(hexed)) is None
    assert decode_datetime(bytes.fromhex(hexed)) is None


def test_unspecified_time_fields_count_as_zero():
    assert cdt.decode(bytes.fromhex("07de0c1fffffffffff003c00")).local == dt.datetime(2014, 12, 31)


def test_status_bits():
    assert cdt.status_names(0x81) == ["invalid", "daylightSavingActive"]
    assert cdt.status_names(cdt.ClockStatus.DOUBTFUL | cdt.ClockStatus.DIFFERENT_CLOCK_BASE) == [
        "doubtful", "differentClockBase"]
    assert cdt.status_names(0) == []


def test_timestamps_round_trip_in_both_conventions():
    ts = 1_782_900_000  # 2026-07-01T10:00:00Z
    for utc_minus_local, deviation in ((True, -120), (False, 120)):
        raw = cdt.from_timestamp(ts, 120, utc_minus_local)
        assert int.from_bytes(raw[9:11], "big", signed=True) == deviation
        assert raw[:9] == bytes.fromhex("07ea0701030c000000")
        assert cdt.to_timestamp(raw, 0, utc_minus_local) == ts
        # Read with the wrong sign, the same bytes land two offsets (4 h) away.
        assert cdt.to_timestamp(raw, 0, not utc_minus_local) - ts == 4 * 3600


def test_clock_value_keeps_the_meters_convention():
    now = dt.datetime(2026, 7, 1, 10, 0, 0, 250000, tzinfo=dt.timezone.utc)
    summer = dt.timezone(dt.timedelta(hours=2))
    raw = cdt.clock_value(now, summer, deviation_specified=True, standard_offset=60)
    assert raw == bytes.fromhex("07ea0701030c000019ff8880")  # 12:00:00.25, -120, daylight saving active
    raw = cdt.clock_value(now, summer, deviation_specified=True, standard_offset=60, utc_minus_local=False)
    assert raw[9:] == bytes.fromhex("007880")
    # A meter on standard time all year: no summer flag; without a known standard offset neither.
    assert cdt.clock_value(now, CET, deviation_specified=True, standard_offset=60)[9:] == bytes.fromhex("ffc400")
    assert cdt.clock_value(now, summer, deviation_specified=True, standard_offset=None)[11] == 0
    # A meter that never sends a deviation gets its local time and none back.
    raw = cdt.clock_value(now, CET, deviation_specified=False, standard_offset=60)
    assert raw == bytes.fromhex("07ea0701030b000019") + b"\x80\x00\x00"


def test_encode_needs_a_zone():
    with pytest.raises(ValueError, match="time zone"):
        cdt.encode_aware(dt.datetime(2026, 7, 1))
