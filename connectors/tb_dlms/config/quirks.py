"""Named meter quirks: a documented preset of connection settings for a meter family.

``connection.quirks: "microstar"`` fills in what the field notes record for that family; any key
the device sets itself wins over the preset. A preset is made only of ordinary connection keys
and of the switches below, each of which can also be set alone:

- ``unitOverrides``: unit text by unit code (``{"35": "V"}``) or by telemetry key
  (``{"voltage_l1": "V"}``), for meters that report a wrong unit code;
- ``minAssociationIntervalS``: fewest seconds between two association attempts (a meter that
  ignores an attempt coming too soon; the session waits instead of failing);
- ``noRangeDeviation``: profile range bounds sent with the deviation "not specified" (0x8000)
  instead of UTC with deviation 0: some meters reject range selectors carrying a deviation
  (public issue trackers, field notes "What real meters and clients get wrong").

Keep the list short and each entry sourced.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fields import Section, kind_of, show

SWITCH_KEYS = ("unitOverrides", "minAssociationIntervalS", "noRangeDeviation")


@dataclass(frozen=True, slots=True)
class Preset:
    settings: dict[str, Any]
    #: Where each fact comes from (shown in README's table).
    source: str


PRESETS: dict[str, Preset] = {
    "microstar": Preset(
        settings={
            "interface": "hdlc", "port": 3333, "clientAddress": 1,
            "hdlc": {"maxInfoField": 128, "windowSize": 1},
            "inactivityTimeoutS": 180, "minAssociationIntervalS": 15,
            # Code 35 is V in the Blue Book table too: pinned so the voltage unit never depends on it.
            "unitOverrides": {"35": "V"},
        },
        source="our field notes on the Microstar three-phase meter behind a serial server "
               "(raw HDLC on TCP 3333, client 1, 128-byte information field, window 1, idle association "
               "dropped after 180 s, 10-15 s between attempts, unit code 35 for volts)",
    ),
}


def with_preset(sec: Section) -> Section:
    """The connection section with its ``quirks`` preset filled in under the device's own keys."""
    name = sec.data.get("quirks")
    if name is None:
        return sec
    if not isinstance(name, str) or name.strip().lower() not in PRESETS:
        sec.error("quirks", f"unknown quirks preset {show(name)}; known: {', '.join(sorted(PRESETS))}")
        return sec
    preset = PRESETS[name.strip().lower()].settings
    merged: dict[str, Any] = {**preset, **sec.data}
    for key, value in preset.items():
        own = sec.data.get(key)
        if isinstance(value, dict) and isinstance(own, dict):
            merged[key] = {**value, **own}
    return Section(merged, sec.path, sec.errors, sec.device_index, sec.device_name)


def preset_name(sec: Section) -> str | None:
    """The preset's name as written back (``public_connection``): trimmed, lower case."""
    name = sec.data.get("quirks")
    return name.strip().lower() if isinstance(name, str) and name.strip() else None


def unit_overrides(sec: Section) -> tuple[dict[int, str], dict[str, str]]:
    """``unitOverrides`` -> (by unit code, by telemetry key)."""
    raw = sec.data.get("unitOverrides")
    by_code: dict[int, str] = {}
    by_key: dict[str, str] = {}
    if raw is None:
        return by_code, by_key
    if not isinstance(raw, dict):
        sec.error("unitOverrides", f"must be an object (unit code or key -> unit text), got {kind_of(raw)}")
        return by_code, by_key
    for key, text in raw.items():
        if not isinstance(text, str) or not text.strip():
            sec.error(f"unitOverrides.{key}", f"must be a non-empty unit text, got {show(text)}")
            continue
        if key.isdigit():
            if not 0 <= int(key) <= 255:
                sec.error(f"unitOverrides.{key}", "a unit code is 0..255 (Blue Book unit enumeration)")
                continue
            by_code[int(key)] = text
        else:
            by_key[key] = text
    return by_code, by_key


def no_range_deviation(sec: Section) -> bool:
    raw = sec.data.get("noRangeDeviation", False)
    if not isinstance(raw, bool):
        sec.error("noRangeDeviation", f"must be true or false, got {show(raw)}")
        return False
    return raw
