"""What a poll asks for (AttributeRef) and what it gets back (Reading)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from .obis import ObisCode

#: What a bare OBIS code means: a Register (class 3) and its value (attribute 2).
REGISTER_CLASS: Final = 3
VALUE_ATTRIBUTE: Final = 2
#: A class id is a long-unsigned; attribute indexes run 1..127 (an integer, negative ones are not attributes).
CLASS_ID_RANGE: Final = (1, 0xFFFF)
ATTRIBUTE_RANGE: Final = (1, 127)

#: COSEM interface classes we name in configs and errors.
CLASS_NAMES = {
    1: "Data",
    3: "Register",
    4: "ExtendedRegister",
    5: "DemandRegister",
    7: "ProfileGeneric",
    8: "Clock",
    15: "AssociationLN",
    70: "DisconnectControl",
}


@dataclass(frozen=True, slots=True, order=True)
class AttributeRef:
    """One COSEM attribute: class id, logical name, attribute index (2 = a register's value)."""

    obis: ObisCode
    class_id: int = REGISTER_CLASS
    attribute: int = VALUE_ATTRIBUTE
    #: Computed once: refs are dictionary keys on every poll (scaler cache, decoders).
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((bytes(self.obis), self.class_id, self.attribute)))

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def of(cls, obis: "str | ObisCode", class_id: int = REGISTER_CLASS,
           attribute: int = VALUE_ATTRIBUTE) -> "AttributeRef":
        return cls(ObisCode.parse(obis), class_id, attribute)

    @property
    def has_scaler(self) -> bool:
        """Registers (3), extended (4) and demand (5) registers carry scaler_unit in attribute 3/4."""
        return self.class_id in (3, 4, 5) and self.attribute == 2

    def __str__(self) -> str:
        return f"{self.class_id}/{self.obis}/{self.attribute}"


@dataclass(frozen=True, slots=True)
class Reading:
    """A decoded attribute value, or the error the meter gave for this attribute alone."""

    ref: AttributeRef
    value: Any = None
    unit: str | None = None
    scaler: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
