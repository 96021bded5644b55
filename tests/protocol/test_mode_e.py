"""IEC 62056-21 mode E sign-on parser, against identification strings published for real meters.

Sources: ``/ISk5\\2MT382-1000`` (Iskraemeco MT382, the example telegram of the Dutch DSMR P1
companion standard), ``/ISk5ME172-0000`` and ``/ISk5MT174-0001`` (Iskraemeco, mode C only, as
quoted by open-source readers), ``/EMH5\\@D4EM4TWII001--`` (EMH EM4T II manual, 2020: an enhanced
character that is not '2'), ``/KFM5KAIFA-METER`` (Kaifa). The DLMS UA list of standard items:
enhanced identification character '2' means binary mode (HDLC) is available.
"""
from __future__ import annotations

import pytest

from tb_dlms.protocol import mode_e


@pytest.mark.parametrize("line, manufacturer, baud, ident, marker", [
    ("/ISk5\\2MT382-1000", "ISk", 9600, "MT382-1000", True),
    ("/ISk5ME172-0000", "ISk", 9600, "ME172-0000", False),
    ("/ISk5MT174-0001", "ISk", 9600, "MT174-0001", False),
    ("/EMH5\\@D4EM4TWII001--", "EMH", 9600, "D4EM4TWII001--", False),
    ("/KFM5KAIFA-METER", "KFM", 9600, "KAIFA-METER", False),
])
def test_identification_of_real_meters(line, manufacturer, baud, ident, marker):
    parsed = mode_e.parse_identification(line)
    got = (parsed.manufacturer, parsed.max_baudrate, parsed.ident, parsed.mode_e)
    assert got == (manufacturer, baud, ident, marker)
    assert parsed.raw == line


def test_lower_case_third_letter_means_fast_reaction():
    assert mode_e.parse_identification("/ISk5\\2MT382-1000").fast_reaction
    assert not mode_e.parse_identification("/KFM5KAIFA-METER").fast_reaction


@pytest.mark.parametrize("line", ["ISk5\\2MT382", "/IS", "/ISkA\\2MT382", "/123456"])
def test_not_an_identification(line):
    with pytest.raises(mode_e.SignOnFailed):
        mode_e.parse_identification(line)


def test_mode_b_baud_character_is_refused_with_the_reason():
    with pytest.raises(mode_e.SignOnFailed, match="mode A or B"):
        mode_e.parse_identification("/ABCE\\2XYZ")


def test_sign_on_request_with_and_without_device_address():
    assert mode_e.sign_on_request() == b"/?!\r\n"
    assert mode_e.sign_on_request("12345678") == b"/?12345678!\r\n"
    with pytest.raises(ValueError):
        mode_e.sign_on_request("12!4")


def test_acknowledgement_is_ack_2_z_2():
    assert mode_e.acknowledgement("5") == bytes([0x06, 0x32, 0x35, 0x32, 0x0D, 0x0A])


def test_baud_rate_agreed_is_capped_by_both_sides():
    offer = mode_e.parse_identification("/ISk5\\2MT382-1000")  # 9600
    assert mode_e.baud_char_for(offer, 9600) == "5"
    assert mode_e.baud_char_for(offer, 19200) == "5"
    assert mode_e.baud_char_for(offer, 2400) == "3"


def test_sign_on_skips_the_probes_echo_and_waits_for_the_whole_line():
    sign_on = mode_e.SignOn(mode_e.sign_on_request("12345678"))
    assert sign_on.feed(b"/?12345678!\r\n/ISk5\\2MT3") is None
    ident = sign_on.feed(b"82-1000\r\n")
    assert ident is not None and ident.mode_e and ident.ident == "MT382-1000"


def test_sign_on_strips_a_parity_bit_read_as_data():
    sign_on = mode_e.SignOn()
    line = bytes(b | 0x80 if i % 2 else b for i, b in enumerate(b"/ISk5\\2MT382-1000\r\n"))
    assert sign_on.feed(line).manufacturer == "ISk"


def test_meter_without_mode_e_is_reported_as_such():
    sign_on = mode_e.SignOn()
    with pytest.raises(mode_e.NoModeE, match="mode C only"):
        sign_on.feed(b"/ISk5ME172-0000\r\n")


def test_noise_without_end_of_line_is_bounded():
    sign_on = mode_e.SignOn()
    with pytest.raises(mode_e.SignOnFailed, match="no end of line"):
        sign_on.feed(b"/" + b"x" * 200)
