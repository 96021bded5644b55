"""Meters that call in and pushes, as ThingsBoard sees them: presence, and pushed values as telemetry.

The protocol side (protocol/listener.py) accepts, identifies and decodes; this side wires each
configured device to its link and push target: a meter calling in connects its device and wakes
its polls; a dropped connection disconnects it; a push becomes telemetry under the device, with
the keys of ``push.objects`` in push order and the notification's own date-time as timestamp.
"""
from __future__ import annotations

import logging
from typing import Iterable

from thingsboard_gateway.gateway.entities.converted_data import ConvertedData
from thingsboard_gateway.gateway.entities.telemetry_entry import TelemetryEntry

from ..protocol.listener import InboundHub, PushTarget
from ..protocol.push import Notification
from ..protocol.readings import AttributeRef
from ..protocol.settings import ClockDeviation
from ..protocol.values import apply_scaler, plain
from .convert import json_value
from .device import DLMSDevice


def wire(hub: InboundHub, devices: Iterable[DLMSDevice], log: logging.Logger) -> None:
    """Attach every device that calls in or pushes to the hub (on the loop that owns the hub)."""
    for device in devices:
        c = device.config.connection
        link = None
        if c.listener is not None and c.identity is not None:
            link = hub.link_for(c.listener, c.identity, device.name, c.call_in_wait)
            link.on_presence = lambda _link, up, d=device: d.call_in(up, _link.closed_reason)
        push = device.config.push
        if push is None:
            continue
        title = push.system_title
        listener = hub.listeners.get(c.listener) if c.listener is not None else None
        if title is None and listener is not None and listener.settings.identify_by.system_title and c.identity:
            title = bytes.fromhex(c.identity)
        sec = c.security
        # Keys may be absent (a security section with policy none): then ciphered pushes cannot be read.
        keys = (bytes(sec.block_cipher_key), bytes(sec.authentication_key)) \
            if sec is not None and sec.block_cipher_key is not None and sec.authentication_key is not None else None
        # A polled meter's pushes come from its own address: they go to the same device.
        host = None if c.inbound else c.host
        target = PushTarget(device.name, PushReceiver(device, log).deliver, keys,
                            c.clock_deviation is ClockDeviation.UTC_MINUS_LOCAL, title, host=host)
        device.push_target = target
        hub.add_push_target(target, link)


class PushReceiver:
    """One device's pushes to telemetry."""

    def __init__(self, device: DLMSDevice, log: logging.Logger) -> None:
        self.device = device
        self._log = log
        push = device.config.push
        assert push is not None  # wire() makes a receiver only for a device with a push section
        self._objects = push.objects
        self._scalers: dict[AttributeRef, int] = {}
        self._warned_count = False

    def deliver(self, note: Notification, received: float) -> None:
        device = self.device
        objects = self._objects
        if len(note.values) != len(objects) and not self._warned_count:
            self._warned_count = True
            self._log.warning("%s: push carries %d value(s), push.objects maps %d: extra values are ignored, "
                              "missing keys left out", device.name, len(note.values), len(objects))
        values = {}
        session = device.session
        for obj, raw in zip(objects, note.values, strict=False):
            scaler = obj.scaler
            if scaler is None and obj.ref.has_scaler:
                # From the last association the meter had with us: a push carries raw values only.
                found = session.scaler_of(obj.ref) if session is not None else None
                if found is not None:
                    self._scalers[obj.ref] = found
                scaler = self._scalers.get(obj.ref)
            values[obj.key] = json_value(apply_scaler(plain(raw), scaler))
        ts = note.timestamp_ms if note.timestamp_ms is not None else int(received * 1000)
        data = ConvertedData(device.name, device.config.type)
        data.add_to_telemetry(TelemetryEntry(values, ts))
        device.pushes += 1
        device.last_push_ts = ts
        device.publish_push(data)
