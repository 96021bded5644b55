"""Never hand the gateway a datapoint larger than ThingsBoard accepts.

The gateway splits a message into packs of at most its ``maxPayloadSizeBytes`` (90 % of the
``maxPayloadSize`` ThingsBoard announced in its session limits; 8196 bytes before they arrive), but
it cannot split one value: a longer one goes out as an oversized MQTT message that ThingsBoard
refuses, and the gateway keeps retrying it from its storage while everything behind it waits.
``maxReplyBytes`` already bounds what a meter may send; this bounds what one value may cost at
ThingsBoard, which can be far less (a 20 KB octet string is 40 KB of hex in JSON).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from thingsboard_gateway.gateway.entities.converted_data import ConvertedData
from thingsboard_gateway.gateway.entities.telemetry_entry import TelemetryEntry

#: Bytes of a message that are not the datapoint: topic, device name quoting, ts, braces.
ENVELOPE_BYTES = 128


@dataclass(frozen=True, slots=True)
class Oversized:
    key: str
    size: int
    limit: int

    def describe(self, device: str) -> str:
        return (f"{device}: value of {self.key} is {self.size} bytes as JSON, more than ThingsBoard accepts in "
                f"one message ({self.limit} bytes, the gateway's maxPayloadSizeBytes); dropped")


def datapoint_bytes(key: str, value: Any) -> int:
    return len(json.dumps({key: value}, default=str, separators=(",", ":")).encode("utf-8"))


def within_limit(data: ConvertedData, limit: int) -> tuple[ConvertedData, list[Oversized]]:
    """``data`` without the datapoints that exceed ``limit`` (the same object when none does)."""
    room = max(0, limit - ENVELOPE_BYTES - len(data.device_name.encode("utf-8")))

    def too_big(key: Any, value: Any) -> Oversized | None:
        name = getattr(key, "key", key)
        size = datapoint_bytes(str(name), value)
        return Oversized(str(name), size, limit) if size > room else None

    dropped: list[Oversized] = []
    for entry in data.telemetry:
        dropped += [o for k, v in entry.values.items() if (o := too_big(k, v)) is not None]
    dropped += [o for k, v in data.attributes.values.items() if (o := too_big(k, v)) is not None]
    if not dropped:
        return data, []
    bad = {o.key for o in dropped}
    kept = ConvertedData(data.device_name, data.device_type)

    def keep(key: Any) -> bool:
        return str(getattr(key, "key", key)) not in bad

    for entry in data.telemetry:
        values = {k: v for k, v in entry.values.items() if keep(k)}
        if values:
            kept.add_to_telemetry(TelemetryEntry(values, entry.ts))
    for k, v in data.attributes.values.items():
        if keep(k):
            kept.add_to_attributes(k, v)
    return kept, dropped


def gateway_limit(gateway: Any, default: int = 8196) -> int:
    """The gateway's own bound (``get_max_payload_size_bytes``), or the gateway client's default."""
    try:
        value = gateway.get_max_payload_size_bytes()
    except Exception:  # noqa: BLE001 - an older or fake gateway: the MQTT client's default
        return default
    return value if isinstance(value, int) and value > 0 else default


def is_empty(data: ConvertedData) -> bool:
    return not data.telemetry and not data.attributes.values
