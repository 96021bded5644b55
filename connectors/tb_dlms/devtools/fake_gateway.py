"""A stand-in for the gateway as the connector sees it, for unit tests and benchmarks alike.

``DLMSConnector`` talks to its gateway through four things only: ``remote_handler`` (which the
gateway's ``init_logger`` attaches to the connector's logger), ``send_to_storage``,
``send_rpc_reply`` and, optionally, ``get_max_payload_size_bytes``. This class offers the first
three, records what it is handed and lets a test wait for it instead of sleeping. The variants the
tests and benchmarks need are options of the one class:

- ``keep``: how much of each hand-over is kept: ``"data"`` (every ``ConvertedData``, for the
  views a test asserts on), ``"timestamps"`` (telemetry timestamps per device, what a soak needs
  to score its poll slots) or ``"names"`` (only who reported, so that a memory benchmark measures
  the connector and not this recorder);
- ``refusing`` / ``refusals``: storage that answers ``Status.FAILURE`` (as 3.8.5's does when its
  queue fails) while ``refusing`` is true, or for the next ``refusals`` hand-overs with telemetry.

A real gateway (devtools/gateway_process.py) is what the e2e tests use; this fakes no MQTT, no
storage and no ThingsBoard.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Literal

from thingsboard_gateway.gateway.constant_enums import Status

Keep = Literal["data", "timestamps", "names"]


class RemoteHandler(logging.Handler):
    """What ``init_logger`` expects on ``gateway.remote_handler``; it sends nothing anywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.loggers: dict[str, Any] = {}

    def add_logger(self, name, level) -> None:
        self.loggers[name] = (logging.getLogger(name), level)

    def update_logger(self, name, level) -> None:
        self.add_logger(name, level)

    def remove_logger(self, name) -> None:
        self.loggers.pop(name, None)

    def emit(self, record) -> None:
        pass


class FakeGateway:
    """Records what the connector hands over; tests wait on its condition instead of sleeping."""

    def __init__(self, *, keep: Keep = "data", refusing: bool = False, refusals: int = 0) -> None:
        self.remote_handler = RemoteHandler()
        self.keep = keep
        #: Refuse every hand-over while true (a test may switch it off to end the outage).
        self.refusing = refusing
        #: Refuse this many more hand-overs that carry telemetry, then take them again.
        self.refusals = refusals
        self.stored: list[tuple[str, Any, Any]] = []
        self.replies: list[tuple[Any, Any, Any]] = []
        #: Telemetry timestamps (ms) per device, with ``keep="timestamps"``.
        self.ts: dict[str, list[int]] = {}
        #: Names of the devices whose data was taken.
        self.reported: set[str] = set()
        #: Hand-overs taken (refused ones not counted).
        self.messages = 0
        self.changed = threading.Condition()

    def send_to_storage(self, connector_name, connector_id, data) -> Status:
        with self.changed:
            if self._refuses(data):
                return Status.FAILURE
            self.messages += 1
            self.reported.add(data.device_name)
            if self.keep == "data":
                self.stored.append((connector_name, connector_id, data))
            elif self.keep == "timestamps" and data.telemetry:
                self.ts.setdefault(data.device_name, []).extend(entry.ts for entry in data.telemetry)
            self.changed.notify_all()
        return Status.SUCCESS

    def _refuses(self, data) -> bool:
        if self.refusing:
            return True
        if self.refusals > 0 and data.telemetry:
            self.refusals -= 1
            return True
        return False

    def send_rpc_reply(self, device=None, req_id=None, content=None, **_kwargs) -> None:
        with self.changed:
            self.replies.append((device, req_id, content))
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    # -- views (keep="data") ------------------------------------------------------------------

    def data_for(self, device: str) -> list:
        return [d for _, _, d in self.stored if d.device_name == device]

    def telemetry(self, device: str) -> list[tuple[int, dict]]:
        out = []
        for data in self.data_for(device):
            for entry in data.telemetry:
                out.append((entry.ts, {k.key: v for k, v in entry.values.items()}))
        return out

    def attributes(self, device: str) -> dict:
        merged: dict = {}
        for data in self.data_for(device):
            merged.update(data.attributes.to_dict())
        return merged

    def reply_for(self, req_id) -> Any:
        for _, rid, content in self.replies:
            if rid == req_id:
                return content
        return None
