"""The gurux-free table of DLMS data types says what gurux's ``DataType`` says."""
from __future__ import annotations

import pytest
from gurux_dlms.enums import DataType

from tb_dlms.protocol.data_types import DATA_TYPES, data_type_code, data_type_name
from tb_dlms.protocol.session import data_type


def test_the_table_is_gurux_data_type():
    assert DATA_TYPES == {name.lower(): int(value) for name, value in vars(DataType).items() if name.isupper()}


@pytest.mark.parametrize("name,canonical", [("bool", "boolean"), ("Octet-String", "octet_string"),
                                            ("uint16", "uint16"), ("double", "float64")])
def test_aliases(name: str, canonical: str) -> None:
    assert data_type_name(name) == canonical
    assert data_type(name) == DataType(data_type_code(canonical))
    assert isinstance(data_type(name), DataType)


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown DLMS data type 'uint7'; one of: array, bcd"):
        data_type_code("uint7")
