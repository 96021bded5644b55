import pytest

from tb_dlms.protocol.obis import ObisCode, ObisError


@pytest.mark.parametrize("text", ["1.0.32.7.0.255", "1-0:32.7.0*255", "1-0:32.7.0", " 1-0:32.7.0&255 "])
def test_notations_parse_to_same_code(text):
    assert ObisCode.parse(text) == ObisCode(1, 0, 32, 7, 0, 255)


@pytest.mark.parametrize("text", ["", "1.0.32.7.0", "1.0.32.7.0.256", "a.b.c.d.e.f", "1-0:32.7", 5])
def test_bad_codes_name_the_input(text):
    with pytest.raises(ObisError) as exc:
        ObisCode.parse(text)
    assert "OBIS" in str(exc.value)


def test_round_trip_forms():
    code = ObisCode.parse("0-0:96.1.0*255")
    assert str(code) == "0.0.96.1.0.255"
    assert code.reduced == "0-0:96.1.0*255"
    assert ObisCode.from_bytes(bytes(code)) == code
