"""Readable names for event codes, so a dashboard shows "Power down" rather than 1.

The codes are those of the standard event log (IDIS / DLMS UA Blue Book, event group "standard");
manufacturer-specific and other logs (disconnector, power quality) differ between meters, so a
device config adds or overrides names per event log (``eventLogs[].names``).
"""
from __future__ import annotations

from typing import Final, Mapping

STANDARD_EVENTS: Final[dict[int, str]] = {
    1: "Power down",
    2: "Power up",
    3: "Daylight saving time enabled or disabled",
    4: "Clock adjusted (old date/time)",
    5: "Clock adjusted (new date/time)",
    6: "Clock invalid",
    7: "Replace battery",
    8: "Battery voltage low",
    9: "TOU activated",
    10: "Error register cleared",
    11: "Alarm register cleared",
    12: "Program memory error",
    13: "RAM error",
    14: "NV memory error",
    15: "Watchdog error",
    16: "Measurement system error",
    17: "Firmware ready for activation",
    18: "Firmware activated",
    19: "Passive TOU programmed",
    47: "One or more parameters changed",
    48: "Global key(s) changed",
    51: "Firmware verification failed",
    88: "Phase sequence reversal",
    89: "Missing neutral",
    254: "Load profile cleared",
    255: "Event log cleared",
}


def event_name(code: int, extra: Mapping[int, str] | None = None) -> str:
    if extra and code in extra:
        return extra[code]
    return STANDARD_EVENTS.get(code, f"Event {code}")
