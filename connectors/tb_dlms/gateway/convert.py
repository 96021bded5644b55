"""From readings to the gateway's data model: which key, which report strategy, which value."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

from thingsboard_gateway.gateway.entities.datapoint_key import DatapointKey
from thingsboard_gateway.gateway.entities.report_strategy_config import ReportStrategyConfig

from ..config.schema import PointConfig, ReportStrategySpec
from ..protocol.readings import AttributeRef, Reading


def report_strategy(spec: ReportStrategySpec | None, log: logging.Logger | None = None) -> ReportStrategyConfig | None:
    """None lets the gateway apply the connector's (or its own) strategy."""
    if spec is None:
        return None
    try:
        return ReportStrategyConfig(spec.as_gateway_dict())
    except ValueError as exc:
        if log is not None:
            log.error("Report strategy %s rejected by the gateway: %s", spec.as_gateway_dict(), exc)
        return None


def json_value(value: Any) -> Any:
    """The session already decodes to JSON types; this only guards what ThingsBoard cannot store."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return str(value)


@dataclass(frozen=True, slots=True)
class Failure:
    point: PointConfig
    error: str

    def describe(self, meter: str) -> str:
        ref = self.point.ref
        return (f"{meter}: {self.point.key} (OBIS {ref.obis}, class {ref.class_id}, attribute {ref.attribute}) "
                f"not read: {self.error}")


class PointMap:
    """The mapped points of one section (timeseries or attributes) of one device."""

    def __init__(self, points: Sequence[PointConfig], device_strategy: ReportStrategySpec | None = None,
                 log: logging.Logger | None = None) -> None:
        self.points = tuple(points)
        self.refs: list[AttributeRef] = [p.ref for p in self.points]
        self.keys = [DatapointKey(p.key, report_strategy(p.report_strategy or device_strategy, log))
                     for p in self.points]

    def __bool__(self) -> bool:
        return bool(self.points)

    def split(self, readings: Sequence[Reading]) -> tuple[list[tuple[DatapointKey, Any]], list[Failure]]:
        """Good values by key, and the points that failed (error, no value, or missing reading)."""
        good: list[tuple[DatapointKey, Any]] = []
        bad: list[Failure] = []
        for i, (point, key) in enumerate(zip(self.points, self.keys, strict=True)):
            reading = readings[i] if i < len(readings) else None
            if reading is None:
                bad.append(Failure(point, "no reading returned"))
                continue
            if reading.error is not None:
                bad.append(Failure(point, reading.error))
                continue
            value = json_value(reading.value)
            if value is None:
                bad.append(Failure(point, "meter returned no value"))
                continue
            good.append((key, value))
        return good, bad
