"""Connector RPCs for a meter that is not (yet) configured: ``dlms_probe`` and ``dlms_discover``.

Commissioning a meter from ThingsBoard, the way the Modbus connector reaches a device outside its
configuration: connection parameters in, the same answer as ``test_config.py`` (probe) or
``--discover`` (object list and suggested config entry) out. The parameters go through the
connector's own schema, so the meter is reached with exactly the settings a config entry would give.

A meter that is already polled is never given a second association: a meter keeps one association
at a time and a serial server one client (field notes), so a second one would fail or knock the
poller off. When the parameters name a configured meter (same endpoint and server address), the
work queues on that meter's session instead, between its polls, and leaves it associated. Any
other meter is reached through the connector's link pool, so a new meter behind a serial server
takes turns on the bus with its polled neighbours.

The gateway calls connector RPCs on its MQTT thread and publishes what the handler returns, so the
handler waits for the answer; ``timeoutMs`` bounds that wait (default: ThingsBoard's default RPC
timeout, so the answer arrives while ThingsBoard still waits for it).
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

from ..config.errors import ConfigError
from ..config.schema import DeviceConfig, load_connector_config
from .device import DLMSDevice
from .sessions import SessionFactory

#: ThingsBoard's default timeout of a two-way RPC (ms): answer within it unless asked otherwise.
DEFAULT_TIMEOUT_MS = 10_000
TIMEOUT_RANGE_MS = (1_000, 60_000)
#: Answer this long before the caller's wait ends, so a slow meter still gets a reply, not a timeout.
REPLY_MARGIN_S = 0.5
#: What a probe reads when the request maps nothing: every meter has its logical device name.
DEFAULT_POINTS = [{"key": "logicalDeviceName", "obis": "0.0.42.0.0.255", "classId": "Data"}]
#: Top-level keys of the request that are not a device entry's.
REQUEST_KEYS = ("timeoutMs",)
SECRET_KEYS = ("password", "blockCipherKey", "authenticationKey")
REDACTED = "<redacted: write a ${VAR} reference here>"


class CommissioningError(ValueError):
    """A request we refuse before touching any meter; the message is the reply's ``error``."""


def timeout_s(params: Mapping[str, Any]) -> float:
    value = params.get("timeoutMs", DEFAULT_TIMEOUT_MS)
    lo, hi = TIMEOUT_RANGE_MS
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise CommissioningError(f"params.timeoutMs must be an integer {lo}..{hi}, got {json.dumps(value)}")
    return value / 1000


def target_device(params: Mapping[str, Any], method: str, points: bool = True) -> DeviceConfig:
    """The request as one device entry, through the connector's schema (errors name the field)."""
    if "connection" not in params:
        raise CommissioningError(f'{method} needs params.connection, e.g. {{"connection": {{"host": "10.0.0.5", '
                                 '"port": 4059, "interface": "wrapper"}}}}')
    entry = {k: v for k, v in params.items() if k not in REQUEST_KEYS}
    entry.setdefault("deviceName", f"{method} target")
    if not points:
        entry = {k: v for k, v in entry.items() if k not in ("timeseries", "attributes")}
    if not entry.get("timeseries") and not entry.get("attributes"):
        entry["timeseries"] = DEFAULT_POINTS
    config, errors = load_connector_config({"devices": [entry]})
    if errors or not config.devices:
        raise CommissioningError(f"{method}: " + "; ".join(_field_error(e) for e in errors or
                                                          [ConfigError("connection", "not usable")]))
    return config.devices[0]


def _field_error(error: ConfigError) -> str:
    # The request is one device: "devices[0]." in front of every path says nothing to the caller.
    path = error.path.removeprefix("devices[0].").removeprefix("devices[0]")
    return f"params.{path} {error.message}".replace("params. ", "params ") if path else error.message


def same_meter(a: DeviceConfig, b: DeviceConfig) -> bool:
    """One physical meter: one endpoint and one server address (any client, any credentials)."""
    ca, cb = a.connection, b.connection
    return (ca.host, ca.port, ca.interface, ca.server_address) == \
        (cb.host, cb.port, cb.interface, cb.server_address)


def polled_twin(target: DeviceConfig, devices: Mapping[str, DLMSDevice]) -> DLMSDevice | None:
    return next((d for d in devices.values() if same_meter(d.config, target)), None)


async def probe(params: Mapping[str, Any], devices: Mapping[str, DLMSDevice], factory: SessionFactory) -> dict:
    from ..tools.probe import probe_session  # the protocol stack, only when a probe is asked for

    wait = timeout_s(params)
    target = target_device(params, "dlms_probe")
    twin = polled_twin(target, devices)
    deadline = wait - REPLY_MARGIN_S
    if twin is None:
        result = await probe_session(target, factory(target.meter_settings()), deadline_s=deadline)
        return {**result.as_dict(), "polledAs": None}
    # A polled meter: its own session, its own client and credentials, in turn with its polls.
    own = replace(twin.config, timeseries=target.timeseries, attributes=target.attributes)
    task = asyncio.ensure_future(probe_session(own, twin.shared_session(), owned=False))
    result = await _bounded(task, wait, f"{twin.name} is busy (a poll or backfill holds its session)")
    if isinstance(result, dict):
        return result
    out = result.as_dict()
    out.update({"polledAs": twin.name, "note": f"{twin.name} is configured and polled: probed over its own "
                                               "session and client address, between its polls"})
    return out


async def discover(params: Mapping[str, Any], devices: Mapping[str, DLMSDevice], factory: SessionFactory) -> dict:
    from ..tools.discover import OBJECT_LIST, device_entry, parse_object_list
    from ..tools.diagnosis import diagnose
    from ..tools.probe import release_session

    wait = timeout_s(params)
    target = target_device(params, "dlms_discover", points=False)
    twin = polled_twin(target, devices)
    session = twin.shared_session() if twin is not None else factory(target.meter_settings())

    async def read() -> Any:
        # A polled meter's session is never cancelled mid-exchange (its own timeouts bound it).
        try:
            async with asyncio.timeout(wait - REPLY_MARGIN_S) if twin is None else nullcontext():
                return await session.get(OBJECT_LIST)
        finally:
            if twin is None:
                await release_session(session)

    try:
        reading = await _bounded(asyncio.ensure_future(read()), wait,
                                 f"{twin.name if twin else 'the meter'} is busy (a poll or backfill holds its session)")
    except Exception as exc:  # noqa: BLE001 - the meter's failure is the answer, with its diagnosis
        d = diagnose(exc, target.meter_settings())
        return {"error": f"dlms_discover failed: {exc or type(exc).__name__}", "diagnosis": d.as_dict()}
    if isinstance(reading, dict):
        return reading
    if reading.error is not None:
        return {"error": f"dlms_discover: object list (0.0.40.0.0.255) not readable: {reading.error}"}
    objects = parse_object_list(reading.value)
    name, device_type = params.get("deviceName"), params.get("deviceType")
    name = name if isinstance(name, str) else "New meter"
    device_type = device_type if isinstance(device_type, str) else "dlms-meter"
    entry = device_entry(name, redact(params["connection"]), objects, device_type)
    return {"device": entry, "objects": len(objects), "timeseries": len(entry["timeseries"]),
            "attributes": len(entry["attributes"]), "polledAs": twin.name if twin else None}


def redact(connection: Any) -> Any:
    """The connection as given, secrets written in clear replaced (``${VAR}`` references kept)."""
    if not isinstance(connection, dict):
        return connection
    out = {}
    for key, value in connection.items():
        if isinstance(value, dict):
            out[key] = redact(value)
        elif key in SECRET_KEYS and not (isinstance(value, str) and value.startswith("${")):
            out[key] = REDACTED
        else:
            out[key] = value
    return out


async def _bounded(task: asyncio.Future, wait: float, busy: str) -> Any:
    """The task's result within ``wait``; past it, a busy answer and the task left to end by itself
    (cancelling it mid-exchange would tear down a polled meter's association)."""
    try:
        return await asyncio.wait_for(asyncio.shield(task), wait - REPLY_MARGIN_S / 2)
    except TimeoutError:
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return {"error": f"{busy}: no answer within {wait:g} s (params.timeoutMs)"}


Method = Callable[[Mapping[str, Any], Mapping[str, DLMSDevice], SessionFactory], Awaitable[dict]]
#: Connector RPC name (after the ``dlms_`` prefix) -> handler.
METHODS: dict[str, Method] = {"probe": probe, "discover": discover}


async def run(method: str, params: Mapping[str, Any], devices: Mapping[str, DLMSDevice],
              factory: SessionFactory) -> dict:
    try:
        return await METHODS[method](params, devices, factory)
    except CommissioningError as exc:
        return {"error": str(exc)}
