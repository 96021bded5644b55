"""Configuration of what a meter keeps for us: load profiles, event logs, its clock, writable points.

Interval data is what utilities bill from, so these sections are validated as strictly as the
connection: every problem names the device and the field, and a device with a wrong section is
left out rather than collecting the wrong columns under the wrong keys.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from ..protocol.axdr import data_type
from ..protocol.obis import ObisCode, ObisError
from ..protocol.readings import AttributeRef
from .fields import Section, kind_of, show

T = TypeVar("T")

PROFILE_KEYS = ("obis", "columns", "windowHours", "horizonDays", "readEvery", "localTimeRange",
                "utcOffsetMinutes", "statusKey")
EVENT_LOG_KEYS = ("obis", "codeColumn", "codeKey", "nameKey", "names", "windowHours", "horizonDays",
                  "readEvery", "localTimeRange", "utcOffsetMinutes")
CLOCK_KEYS = ("obis", "driftKey", "autoSyncThresholdS", "utcOffsetMinutes")
ATTRIBUTE_UPDATE_KEYS = ("key", "obis", "classId", "attribute", "type", "method", "value")
#: Device keys this module reads (schema.py adds them to the device's known keys).
DEVICE_SECTIONS = ("profiles", "eventLogs", "clock", "attributeUpdates")

DEFAULT_CLOCK_OBIS = ObisCode.parse("0.0.1.0.0.255")
DISCONNECT_CONTROL_OBIS = ObisCode.parse("0.0.96.3.10.255")


@dataclass(frozen=True, slots=True)
class Archive:
    """What a profile and an event log share: where they are and how far back and how often to read."""

    obis: ObisCode
    window_hours: float
    horizon_days: float
    read_every_s: float
    #: Range selector in the meter's local time with the deviation left unspecified (some meters
    #: reject a deviation in the selector); needs the meter's standard UTC offset.
    local_time_range: bool = False
    utc_offset_min: int | None = None

    @property
    def range_offset_min(self) -> int | None:
        return self.utc_offset_min if self.local_time_range else None


@dataclass(frozen=True, slots=True)
class ProfileConfig(Archive):
    #: Column -> telemetry key, by position (index into the capture objects) or by OBIS.
    columns_by_index: tuple[tuple[int, str], ...] = ()
    columns_by_obis: tuple[tuple[ObisCode, str], ...] = ()
    status_key: str | None = "clockStatus"


@dataclass(frozen=True, slots=True)
class EventLogConfig(Archive):
    #: The column holding the event code; None: the first column that is not the clock.
    code_column: ObisCode | None = None
    code_key: str = "eventCode"
    name_key: str | None = "eventName"
    names: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ClockConfig:
    obis: ObisCode = DEFAULT_CLOCK_OBIS
    drift_key: str = "clockDriftS"
    #: Set the meter clock when it is off by more than this; None: only on RPC ``syncClock``.
    auto_sync_threshold_s: float | None = None
    #: For meters that leave the deviation unspecified: their local offset east of UTC.
    utc_offset_min: int | None = None

    @property
    def ref(self) -> AttributeRef:
        return AttributeRef(self.obis, 8, 2)


@dataclass(frozen=True, slots=True)
class AttributeUpdateConfig:
    """A shared attribute from ThingsBoard written to the meter, or turned into a method call."""

    key: str
    ref: AttributeRef
    #: DLMS data type of the written value (writes), or of the method parameter (methods).
    type: str | None = None
    #: Method calls only: method index by the attribute's value ("true"/"false"/"1"...), or None to
    #: call ``ref.attribute`` with the value as parameter.
    methods: tuple[tuple[str, int], ...] | None = None
    method_value: Any = 0

    @property
    def is_method(self) -> bool:
        return self.methods is not None


@dataclass(frozen=True, slots=True)
class MeterDataConfig:
    profiles: tuple[ProfileConfig, ...] = ()
    event_logs: tuple[EventLogConfig, ...] = ()
    clock: ClockConfig | None = None
    attribute_updates: tuple[AttributeUpdateConfig, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return bool(self.profiles or self.event_logs or self.clock or self.attribute_updates)

    @property
    def archives(self) -> tuple[Archive, ...]:
        return self.profiles + self.event_logs

    def to_public_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.profiles:
            out["profiles"] = [{"obis": str(p.obis), "windowHours": p.window_hours, "horizonDays": p.horizon_days,
                                "readEvery": p.read_every_s} for p in self.profiles]
        if self.event_logs:
            out["eventLogs"] = [{"obis": str(e.obis), "codeKey": e.code_key} for e in self.event_logs]
        if self.clock is not None:
            out["clock"] = {"obis": str(self.clock.obis), "driftKey": self.clock.drift_key,
                            "autoSyncThresholdS": self.clock.auto_sync_threshold_s}
        if self.attribute_updates:
            out["attributeUpdates"] = [{"key": a.key, "obis": str(a.ref.obis), "classId": a.ref.class_id}
                                       for a in self.attribute_updates]
        return out


def parse_meter_data(sec: Section) -> MeterDataConfig:
    """Read a device's profiles, eventLogs, clock and attributeUpdates; errors go to ``sec``."""
    profiles = tuple(p for p in _list(sec, "profiles", _profile) if p is not None)
    event_logs = tuple(e for e in _list(sec, "eventLogs", _event_log) if e is not None)
    seen: dict[ObisCode, str] = {}
    for kind, archive_list in (("profiles", profiles), ("eventLogs", event_logs)):
        for i, archive in enumerate(archive_list):
            if archive.obis in seen:
                sec.error(f"{kind}[{i}].obis", f"{archive.obis} is already read by {seen[archive.obis]}")
            seen[archive.obis] = f"{kind}[{i}]"
    clock = _clock(sec)
    updates = tuple(u for u in _list(sec, "attributeUpdates", _attribute_update) if u is not None)
    keys: dict[str, int] = {}
    for i, update in enumerate(updates):
        if update.key in keys:
            sec.error(f"attributeUpdates[{i}].key",
                      f"{update.key!r} is already mapped by attributeUpdates[{keys[update.key]}]")
        keys[update.key] = i
    return MeterDataConfig(profiles, event_logs, clock, updates)


# -- sections ---------------------------------------------------------------------------------


def _list(sec: Section, key: str, build: Callable[[Section], T]) -> list[T]:
    out: list[T] = []
    for i, item in sec.sections(key) or ():
        if not isinstance(item, dict):
            sec.error(f"{key}[{i}]", f"must be an object, got {kind_of(item)}")
            continue
        out.append(build(sec.child(item, f"{key}[{i}]")))
    return out


def _archive_fields(sub: Section, window_default: float, read_default: float) -> dict[str, Any] | None:
    obis = sub.obis("obis", required=True)
    window = sub.number("windowHours", window_default, positive=True)
    horizon = sub.number("horizonDays", 7.0, positive=True)
    read_every = sub.number("readEvery", read_default, positive=True)
    local = sub.data.get("localTimeRange", False)
    if not isinstance(local, bool):
        sub.error("localTimeRange", f"must be true or false, got {show(local)}")
        local = False
    offset = sub.integer("utcOffsetMinutes", None, -840, 840)
    if local and offset is None and not sub.has("utcOffsetMinutes"):
        sub.error("utcOffsetMinutes", "is required with localTimeRange: the meter's standard offset east of UTC "
                                      "in minutes (e.g. 60 for CET)")
    if obis is None:
        return None
    return {"obis": obis, "window_hours": window, "horizon_days": horizon, "read_every_s": read_every,
            "local_time_range": local, "utc_offset_min": offset}


def _profile(sub: Section) -> ProfileConfig | None:
    before = len(sub.errors)
    sub.reject_unknown(PROFILE_KEYS)
    common = _archive_fields(sub, 24.0, 900.0)
    by_index, by_obis = _columns(sub)
    status_key: str | None = "clockStatus"
    if sub.has("statusKey") or "statusKey" in sub.data:
        raw = sub.data.get("statusKey")
        if raw is None or raw is False:
            status_key = None
        else:
            status_key = sub.text("statusKey", "clockStatus")
    if len(sub.errors) != before or common is None:
        return None
    return ProfileConfig(**common, columns_by_index=by_index, columns_by_obis=by_obis, status_key=status_key)


def _columns(sub: Section) -> tuple[tuple[tuple[int, str], ...], tuple[tuple[ObisCode, str], ...]]:
    """``columns``: ["ignored-for-clock", "energyImport", ...] by position, or {"1.0.1.8.0.255": "energyImport"}."""
    raw = sub.data.get("columns")
    hint = ('e.g. {"1.0.1.8.0.255": "energyImport"} or [null, "energyImport", "energyExport"] '
            "(by position, null skips a column; the clock column gives the timestamp)")
    if raw is None:
        sub.error("columns", f"is required: which column goes to which telemetry key, {hint}")
        return (), ()
    keys_seen: set[str] = set()

    def key_ok(path: str, key: Any) -> bool:
        if not isinstance(key, str) or not key.strip():
            sub.error(path, f"must be a telemetry key (non-empty string) or null, got {show(key)}")
            return False
        if key in keys_seen:
            sub.error(path, f"key {key!r} is used for two columns")
            return False
        keys_seen.add(key)
        return True

    if isinstance(raw, list):
        by_index = tuple((i, k.strip()) for i, k in enumerate(raw) if k is not None and key_ok(f"columns[{i}]", k))
        if not by_index and raw:
            sub.error("columns", f"maps no column to a key, {hint}")
        return by_index, ()
    if isinstance(raw, dict):
        by_obis = []
        for name, key in raw.items():
            try:
                obis = ObisCode.parse(name)
            except ObisError as exc:
                sub.error(f"columns.{name}", f"is not an OBIS code: {exc}")
                continue
            if key is not None and key_ok(f"columns.{name}", key):
                by_obis.append((obis, key.strip()))
        if not by_obis:
            sub.error("columns", f"maps no column to a key, {hint}")
        return (), tuple(by_obis)
    sub.error("columns", f"must be a list or an object, got {kind_of(raw)}; {hint}")
    return (), ()


def _event_log(sub: Section) -> EventLogConfig | None:
    before = len(sub.errors)
    sub.reject_unknown(EVENT_LOG_KEYS)
    common = _archive_fields(sub, 24.0 * 7, 300.0)
    code_column = sub.obis("codeColumn", None)
    code_key = sub.text("codeKey", "eventCode")
    name_key: str | None = sub.text("nameKey", "eventName")
    if "nameKey" in sub.data and sub.data["nameKey"] is None:
        name_key = None
    names: list[tuple[int, str]] = []
    raw_names = sub.section("names")
    if raw_names is not None:
        for code, name in raw_names.data.items():
            if not (isinstance(code, str) and code.strip().isdigit()) or not isinstance(name, str) or not name:
                raw_names.error(code, f'must map an event code to its name, e.g. "70": "Remote disconnection", '
                                      f"got {show(code)}: {show(name)}")
                continue
            names.append((int(code), name))
    if len(sub.errors) != before or common is None:
        return None
    return EventLogConfig(**common, code_column=code_column, code_key=code_key, name_key=name_key,
                          names=tuple(names))


def _clock(sec: Section) -> ClockConfig | None:
    raw = sec.data.get("clock")
    if raw is True:
        return ClockConfig()
    if raw is None or raw is False:
        return None
    sub = sec.section("clock")
    if sub is None:
        return None
    before = len(sub.errors)
    sub.reject_unknown(CLOCK_KEYS)
    obis = sub.obis("obis", DEFAULT_CLOCK_OBIS)
    drift_key = sub.text("driftKey", "clockDriftS")
    threshold = sub.number("autoSyncThresholdS", None, positive=True)
    offset = sub.integer("utcOffsetMinutes", None, -840, 840)
    if len(sub.errors) != before:
        return None
    return ClockConfig(obis, drift_key, threshold, offset)


def _attribute_update(sub: Section) -> AttributeUpdateConfig | None:
    before = len(sub.errors)
    sub.reject_unknown(ATTRIBUTE_UPDATE_KEYS)
    key = sub.text("key", required=True)
    obis = sub.obis("obis", required=True)
    method_raw = sub.data.get("method")
    is_method = method_raw is not None
    class_id = sub.class_id(70 if is_method else 3)
    type_name = sub.text("type", None)
    if type_name is not None:
        try:
            data_type(type_name)
        except ValueError as exc:
            sub.error("type", str(exc))
    methods: tuple[tuple[str, int], ...] | None = None
    attribute = 2
    if is_method:
        if sub.has("attribute"):
            sub.error("attribute", "and method exclude each other: write an attribute or call a method")
        if isinstance(method_raw, int) and not isinstance(method_raw, bool) and 1 <= method_raw <= 127:
            attribute, methods = method_raw, ()
        elif isinstance(method_raw, dict) and method_raw:
            pairs = []
            for value, index in method_raw.items():
                if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= 127:
                    sub.error(f"method.{value}", f"must be a method index 1..127, got {show(index)}")
                    continue
                pairs.append((str(value).strip().lower(), index))
            methods = tuple(pairs)
        else:
            sub.error("method", 'must be a method index (1..127) or an object from value to method index, '
                                f'e.g. {{"true": 2, "false": 1}}, got {show(method_raw)}')
    else:
        attribute = sub.integer("attribute", 2, 1, 127)
        if type_name is None and not sub.has("type"):
            sub.error("type", "is required for a write: the DLMS data type of the value (uint16, int32, "
                              "octet_string, boolean, enum ...)")
    if len(sub.errors) != before or key is None or obis is None:
        return None
    return AttributeUpdateConfig(key, AttributeRef(obis, class_id, attribute), type_name, methods,
                                 sub.data.get("value", 0))
