"""Profile Generic (class 7) reads: load profiles and event logs, by time range or by entry.

Utilities bill from interval data, and the meter keeps it: a connector that missed intervals
(link down, gateway down) reads them back from the meter's buffer. The range selector carries
date-times; some meters reject a deviation in it, so the caller chooses UTC with deviation 0
(unambiguous, the default) or the meter's local time with the deviation left unspecified.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from . import axdr, cosem_datetime
from .axdr import DataType
from .obis import ObisCode
from .readings import AttributeRef

PROFILE_CLASS = 7
BUFFER, CAPTURE_OBJECTS, CAPTURE_PERIOD, ENTRIES_IN_USE, PROFILE_ENTRIES = 2, 3, 4, 7, 8
CLOCK = AttributeRef.of("0.0.1.0.0.255", 8, 2)
#: Selective access to a profile's buffer (attribute 2): by range of a column, or by entry.
RANGE_DESCRIPTOR, ENTRY_DESCRIPTOR = 1, 2


@dataclass(frozen=True, slots=True)
class CaptureObject:
    ref: AttributeRef
    data_index: int = 0

    @property
    def is_clock(self) -> bool:
        return self.ref.class_id == 8 and self.ref.attribute == 2


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """One captured row. ``timestamp_ms`` comes from the row's own clock column, if it has one."""

    timestamp_ms: int | None
    values: tuple[Any, ...]
    #: Clock status names of the row's timestamp (e.g. "daylightSavingActive", "invalid").
    clock_status: tuple[str, ...] = ()


@dataclass(slots=True)
class ProfileData:
    obis: ObisCode
    columns: list[CaptureObject]
    rows: list[ProfileRow] = field(default_factory=list)
    #: Seconds between captures (0 for event logs).
    capture_period: int = 0


def parse_capture_objects(value: Any) -> list[CaptureObject]:
    """Attribute 3 of a profile: array of structure {class_id, logical_name, attribute, data_index}."""
    columns = []
    for item in value or []:
        class_id, ln, attribute, data_index = item
        columns.append(CaptureObject(AttributeRef(ObisCode.from_bytes(bytes(ln)), int(class_id), int(attribute)),
                                     int(data_index)))
    return columns


def _datetime_octets(when: _dt.datetime, local_offset_min: int | None) -> bytes:
    """12-byte COSEM date-time: UTC with deviation 0, or local time with deviation unspecified."""
    if when.tzinfo is None:
        raise ValueError("profile range bounds need a time zone")
    if local_offset_min is None:
        t, deviation = when.astimezone(_dt.timezone.utc), 0
    else:
        t, deviation = when.astimezone(_dt.timezone(_dt.timedelta(minutes=local_offset_min))), None
    return cosem_datetime.encode(t, deviation, cosem_datetime.STATUS_NOT_SPECIFIED, hundredths=False)


def _capture_object_definition(ref: AttributeRef, data_index: int) -> bytes:
    """{class_id, logical_name, attribute_index, data_index}: a column of a profile."""
    return axdr.structure(axdr.integer(DataType.UINT16, ref.class_id), axdr.octets(bytes(ref.obis)),
                          axdr.integer(DataType.INT8, ref.attribute), axdr.integer(DataType.UINT16, data_index))


def range_selector(start: _dt.datetime, end: _dt.datetime, restricting: CaptureObject | None = None,
                   local_offset_min: int | None = None) -> bytes:
    """Selective access 1 (range_descriptor), all columns. ``selector byte + data`` as gurux takes it."""
    sort = restricting.ref if restricting is not None else CLOCK
    return bytes((RANGE_DESCRIPTOR,)) + axdr.structure(
        _capture_object_definition(sort, restricting.data_index if restricting else 0),
        axdr.octets(_datetime_octets(start, local_offset_min)),
        axdr.octets(_datetime_octets(end, local_offset_min)),
        axdr.array([]),  # selected_values: empty = all columns
    )


def entry_selector(first: int, last: int) -> bytes:
    """Selective access 2 (entry_descriptor): entries first..last (1-based, 0 = to the last), all columns."""
    if first < 1 or last < 0:
        raise ValueError("profile entries are numbered from 1")
    return bytes((ENTRY_DESCRIPTOR,)) + axdr.structure(
        axdr.integer(DataType.UINT32, first), axdr.integer(DataType.UINT32, last),
        axdr.integer(DataType.UINT16, 1), axdr.integer(DataType.UINT16, 0),  # from column 1 to the last
    )
