"""What a poll's readings become at ThingsBoard: telemetry (with units), and attributes once per association.

Units come with the scalers, read once per association, and attributes rarely change: both are sent
when the association is new rather than with every poll. A point that cannot be read is counted each
time and logged when its error first appears or changes, so a meter refusing one register does not
fill the log.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from thingsboard_gateway.gateway.entities.converted_data import ConvertedData
from thingsboard_gateway.gateway.entities.datapoint_key import DatapointKey
from thingsboard_gateway.gateway.entities.telemetry_entry import TelemetryEntry

from ..config.schema import DeviceConfig
from ..protocol.readings import Reading
from ..resilience.stale import StaleTimer
from .coordinator import MeterCoordinator, PollDone, PollListener, describe_error
from .convert import Failure, PointMap

UNITS_ATTRIBUTE = "units"

Publish = Callable[[ConvertedData], None]


class FailureLog:
    """Failed points of one meter (timeseries and attributes alike)."""

    def __init__(self, name: str, log: logging.Logger) -> None:
        self.name = name
        self.count = 0
        self._log = log
        self._errors: dict[str, str] = {}

    def note(self, failures: list[Failure]) -> None:
        self.count += len(failures)
        for failure in failures:
            if self._errors.get(failure.point.key) != failure.error:
                self._errors[failure.point.key] = failure.error
                self._log.warning("%s", failure.describe(self.name))
            else:
                self._log.debug("%s", failure.describe(self.name))


class Telemetry(PollListener):
    """The timeseries of each good poll, and the ``units`` attribute after each association."""

    def __init__(self, config: DeviceConfig, publish: Publish, failures: FailureLog, stale: StaleTimer,
                 log: logging.Logger) -> None:
        self._config = config
        self._points = PointMap(config.timeseries, config.report_strategy, log)
        self._publish = publish
        self._failures = failures
        #: Reset by good readings: a meter that answers with errors only is as stale as a silent one.
        self._stale = stale
        self.last_poll_ts: int | None = None
        #: Association count at which the units attribute was last published.
        self._units_sent_at: int | None = None

    async def poll_done(self, poll: PollDone) -> None:
        if poll.ok and self._points:
            self._send(poll.readings, poll.ts, poll.stats.associations)

    def _send(self, readings: list[Reading], ts: int, association: int) -> None:
        good, bad = self._points.split(readings)
        self.last_poll_ts = ts
        self._failures.note(bad)
        if not good:
            return
        self._stale.good()
        data = ConvertedData(self._config.name, self._config.type)
        data.add_to_telemetry(TelemetryEntry(dict(good), ts))
        if self._units_sent_at != association:
            # Units come with the scalers, read once per association: publish them then, as one
            # attribute, so dashboards can label values without a unit on every reading.
            by_key = dict(self._config.connection.unit_overrides_by_key)  # unitOverrides by key win
            units = {p.key: by_key.get(p.key, r.unit) for p, r in zip(self._points.points, readings, strict=True)
                     if r.ok and (r.unit or p.key in by_key)}
            if units:
                data.add_to_attributes(DatapointKey(UNITS_ATTRIBUTE), units)
            self._units_sent_at = association
        self._publish(data)


class Attributes(PollListener):
    """The mapped attributes, read after each new association and on the ``readAttributes`` RPC."""

    def __init__(self, coordinator: MeterCoordinator, publish: Publish, failures: FailureLog,
                 log: logging.Logger) -> None:
        config = coordinator.config
        self._coordinator = coordinator
        self._points = PointMap(config.attributes, config.report_strategy, log)
        self._type = config.type
        self._publish = publish
        self._failures = failures
        self._log = log
        #: The association (drops, count) at which the attributes were last read.
        self._read_at: tuple[int, int] | None = None

    def _association(self) -> tuple[int, int]:
        return self._coordinator.session_drops, self._coordinator.stats.associations

    async def poll_done(self, poll: PollDone) -> None:
        if not (poll.ok and self._points and self._read_at != self._association()):
            return
        try:
            await asyncio.wait_for(self.read(), self._coordinator.config.poll_timeout_s)
        except Exception as exc:  # noqa: BLE001 - retried after the next successful poll
            self._log.warning("%s: attributes not read: %s", self._coordinator.name, describe_error(exc))

    async def read(self) -> dict:
        """Read the mapped attributes and publish them; the reply of the ``readAttributes`` RPC."""
        name = self._coordinator.name
        readings = await self._coordinator.shared_session().read(self._points.refs)
        good, bad = self._points.split(readings)
        self._read_at = self._association()
        if good:
            data = ConvertedData(name, self._type)
            for key, value in good:
                data.add_to_attributes(key, value)
            self._publish(data)
        self._failures.note(bad)
        return {"attributes": {k.key: v for k, v in good},
                "errors": {f.point.key: f.error for f in bad}}
