"""DLMS data type names and their A-XDR tags, without gurux.

The configuration validates ``attributeUpdates[].type`` and the RPCs name types; neither needs a
DLMS client for that. Importing :mod:`protocol.session` for the table would load gurux, silence its
loggers and patch its cipher in every process that only reads a configuration (``test_config.py``,
the fleet tool). The tags are those of the Blue Book (DLMS UA 1000-1, table "Data types"), equal to
gurux's ``DataType`` members (tests/protocol/test_data_types.py checks that).
"""
from __future__ import annotations

#: Canonical name -> A-XDR tag.
DATA_TYPES: dict[str, int] = {
    "none": 0, "array": 1, "structure": 2, "boolean": 3, "bitstring": 4, "int32": 5, "uint32": 6,
    "octet_string": 9, "string": 10, "string_utf8": 12, "bcd": 13, "int8": 15, "int16": 16,
    "uint8": 17, "uint16": 18, "compact_array": 19, "int64": 20, "uint64": 21, "enum": 22,
    "float32": 23, "float64": 24, "datetime": 25, "date": 26, "time": 27,
}
#: Names an operator is likely to write for a canonical one.
ALIASES: dict[str, str] = {
    "bool": "boolean", "int": "int32", "uint": "uint32", "float": "float32", "double": "float64",
    "octets": "octet_string",
}


def data_type_code(name: str | None) -> int:
    """The A-XDR tag of a DLMS data type by name (``uint16``, ``octet_string``, ``bool`` ...)."""
    if name is None:
        return DATA_TYPES["none"]
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in DATA_TYPES:
        raise ValueError(f"unknown DLMS data type {name!r}; one of: {', '.join(sorted(DATA_TYPES))}")
    return DATA_TYPES[key]


def data_type_name(name: str) -> str:
    """The canonical name of a DLMS data type given by name or alias (``bool`` -> ``boolean``)."""
    code = data_type_code(name)
    return next(k for k, v in DATA_TYPES.items() if v == code)
