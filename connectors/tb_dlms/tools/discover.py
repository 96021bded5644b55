"""Discovery: ask a meter what it has (its association view) and write the config entry for it.

Writing OBIS codes by hand from a data sheet is where most config mistakes come from; the meter's
own object list (0.0.40.0.0.255, attribute 2) is authoritative for the client address used, since
each association lists only what that client may see.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..protocol.obis import ObisCode, ObisError
from ..gateway.sessions import SessionLike
from ..protocol.readings import CLASS_NAMES, AttributeRef
from .known_obis import WELL_KNOWN, key_for

OBJECT_LIST = AttributeRef.of("0.0.40.0.0.255", 15, 2)
REGISTER_CLASSES = (3, 4, 5)


@dataclass(frozen=True, slots=True)
class CosemObject:
    class_id: int
    version: int
    obis: ObisCode
    #: Access mode of attribute 2 (0 none, 1 read, 2 write, 3 read-write); None if not listed.
    value_access: int | None = None

    @property
    def readable(self) -> bool:
        return self.value_access is None or self.value_access in (1, 3)

    def __str__(self) -> str:
        return f"{self.class_id}/{self.obis} {CLASS_NAMES.get(self.class_id, 'class ' + str(self.class_id))}"


def parse_logical_name(raw: Any) -> ObisCode:
    if isinstance(raw, (bytes, bytearray)):
        return ObisCode.from_bytes(bytes(raw))
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) == 12 and all(c in "0123456789abcdefABCDEF" for c in text):
            return ObisCode.from_bytes(bytes.fromhex(text))
        return ObisCode.parse(text)
    raise ObisError(f"logical name of unexpected type {type(raw).__name__}")


def parse_object_list(value: Any) -> list[CosemObject]:
    """Items ``[class_id, version, logical_name, access_rights]``; malformed items are skipped."""
    objects = []
    for item in value or []:
        try:
            class_id, version, ln = int(item[0]), int(item[1]), parse_logical_name(item[2])
        except (TypeError, ValueError, IndexError, ObisError):
            continue
        objects.append(CosemObject(class_id, version, ln, _value_access(item[3] if len(item) > 3 else None)))
    return objects


def _value_access(rights: Any) -> int | None:
    try:
        for attr in rights[0]:
            if int(attr[0]) == 2:
                return int(attr[1])
    except (TypeError, ValueError, IndexError, KeyError):
        pass
    return None


async def read_object_list(session: SessionLike) -> list[CosemObject]:
    reading = await session.get(OBJECT_LIST)
    if reading.error is not None:
        raise ValueError(f"object list not readable: {reading.error}")
    return parse_object_list(reading.value)


def device_entry(name: str, connection: dict, objects: list[CosemObject],
                 device_type: str = "dlms-meter") -> dict:
    """A ``devices[]`` entry: registers as timeseries, well-known identity objects as attributes."""
    timeseries, attributes, other = [], [], []
    for obj in objects:
        known = WELL_KNOWN.get(str(obj.obis))
        if not obj.readable:
            other.append(f"{obj} (value not readable by this client)")
        elif known is not None and known.attribute and known.class_id == obj.class_id:
            attributes.append(_point(known.key, obj))
        elif obj.class_id in REGISTER_CLASSES:
            timeseries.append(_point(key_for(obj.obis), obj))
        else:
            other.append(str(obj))
    entry: dict = {"deviceName": name, "deviceType": device_type, "connection": connection,
                   "timeseries": timeseries, "attributes": attributes}
    if other:
        entry["_otherObjects"] = other
    return entry


def _point(key: str, obj: CosemObject) -> dict:
    out: dict = {"key": key, "obis": str(obj.obis)}
    if obj.class_id != 3:
        out["classId"] = obj.class_id
    return out
