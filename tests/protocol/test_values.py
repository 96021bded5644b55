from tb_dlms.protocol.values import apply_scaler, decode_datetime, encode_datetime, octets, unit_text
import datetime as dt


def test_scaler_is_exact():
    assert apply_scaler(23012, -2) == 230.12
    assert apply_scaler(5, 3) == 5000
    assert apply_scaler(7, 0) == 7
    assert apply_scaler("x", -2) == "x"


def test_units_as_text():
    assert [unit_text(u) for u in (35, 33, 44, 27, 30, 29, 32)] == ["V", "A", "Hz", "W", "Wh", "var", "varh"]
    assert unit_text(255) is None
    assert unit_text(200) == "unit(200)"


def test_octets_printable_or_hex():
    assert octets(b"LGZ12345678") == "LGZ12345678"
    assert octets(b"\x00\x01\xff") == "0001ff"


def test_datetime_deviation_and_status():
    raw = bytes([0x07, 0xEA, 11, 22, 0xFF, 10, 30, 0, 0xFF]) + (-60).to_bytes(2, "big", signed=True) + b"\x80"
    got = decode_datetime(raw)
    assert got["iso"] == "2026-11-22T10:30:00+01:00"
    assert got["deviation"] == -60
    assert got["status"] == ["daylightSavingActive"]
    assert got["epochMs"] == int(dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.timezone.utc).timestamp() * 1000)


def test_datetime_unspecified_deviation_and_empty_date():
    raw = bytes([0x07, 0xEA, 1, 2, 0xFF, 3, 4, 5, 0]) + b"\x80\x00" + b"\x00"
    assert decode_datetime(raw)["iso"] == "2026-01-02T03:04:05"
    assert decode_datetime(b"\xff" * 12) is None
    assert decode_datetime(b"\x00") is None


def test_encode_decode_round_trip():
    when = dt.datetime(2026, 3, 29, 1, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert decode_datetime(encode_datetime(when))["iso"] == when.isoformat()


def test_deviation_sign_conventions_give_the_same_instant():
    """A CET meter writes -60 (UTC minus local, gurux) or +60 (local minus UTC): one instant either way."""
    local = bytes([0x07, 0xEA, 11, 22, 0xFF, 10, 30, 0, 0xFF])
    gurux_way = decode_datetime(local + (-60).to_bytes(2, "big", signed=True) + b"\x00")
    blue_book_way = decode_datetime(local + (60).to_bytes(2, "big", signed=True) + b"\x00",
                                    deviation_utc_minus_local=False)
    assert gurux_way["iso"] == blue_book_way["iso"] == "2026-11-22T10:30:00+01:00"
    assert gurux_way["epochMs"] == blue_book_way["epochMs"]
    # Read with the wrong sign, the same bytes land two offsets (2 h) away.
    wrong = decode_datetime(local + (60).to_bytes(2, "big", signed=True) + b"\x00")
    assert wrong["epochMs"] - gurux_way["epochMs"] == 2 * 3600 * 1000


def test_encode_in_either_convention_round_trips():
    when = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    for utc_minus_local in (True, False):
        raw = encode_datetime(when, utc_minus_local)
        assert int.from_bytes(raw[9:11], "big", signed=True) == (-120 if utc_minus_local else 120)
        assert decode_datetime(raw, utc_minus_local)["iso"] == when.isoformat()
