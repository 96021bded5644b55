"""The gurux-free table of DLMS data types (protocol/axdr.py) says what gurux's ``DataType`` says."""
from __future__ import annotations

import pytest
from gurux_dlms.enums import DataType as GuruxDataType

from tb_dlms.protocol.axdr import DataType, data_type, data_type_name


def test_the_table_is_gurux_data_type():
    assert {m.name.lower(): int(m) for m in DataType} == \
        {name.lower(): int(value) for name, value in vars(GuruxDataType).items() if name.isupper()}


@pytest.mark.parametrize("name,canonical", [("bool", "boolean"), ("Octet-String", "octet_string"),
                                            ("uint16", "uint16"), ("double", "float64")])
def test_aliases(name: str, canonical: str) -> None:
    assert data_type_name(name) == canonical
    assert int(data_type(name)) == int(getattr(GuruxDataType, canonical.upper()))


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown DLMS data type 'uint7'; one of: array, bcd"):
        data_type("uint7")
