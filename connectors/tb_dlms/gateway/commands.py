"""Operations on a meter from ThingsBoard: writes, method calls, the relay, the clock, profile reads.

Each RPC builder checks its parameters on the gateway's thread and returns the work to run on
the polling loop (see rpc.py). A meter that refuses answers with a data-access-result; the
session raises it naming the object, and the reply carries that text.

Shared attribute updates use the same writes: ``attributeUpdates`` in the device config maps a
key to an attribute write or to a method call (e.g. relay true/false -> disconnect control
method 2/1).
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import json
import math
import time
from typing import Any

from ..config.meter_data import DISCONNECT_CONTROL_OBIS, AttributeUpdateConfig, ClockConfig, ProfileConfig
from ..protocol.axdr import INTEGER_RANGES, data_type_name
from ..protocol.obis import ObisCode, ObisError
from ..protocol.readings import AttributeRef
from .clock import read_clock, sync_clock
from . import rpc_work
from .convert import json_value
from .device import DLMSDevice
from .profiles import columns_for, read_range, to_datetime
from .sessions import SessionLike
from .rpc_work import DeviceMethod, DeviceWork, RpcError, int_param

DISCONNECT_CLASS = 70
REMOTE_DISCONNECT, REMOTE_RECONNECT = 1, 2
OUTPUT_STATE, CONTROL_STATE, CONTROL_MODE = 2, 3, 4
CONTROL_STATES = {0: "disconnected", 1: "connected", 2: "ready_for_reconnection"}
#: A profile read on demand may span days of block transfers.
READ_PROFILE_TIMEOUT_S = 60.0
READ_PROFILE_MAX_DAYS = 31
READ_PROFILE_MAX_ROWS = 2000
#: Container types: a JSON list does not say the type of each element, so they are not written.
_UNWRITABLE = ("array", "structure", "compact_array", "none")
WRITABLE_TYPES = tuple(INTEGER_RANGES) + ("boolean", "float32", "float64", "octet_string", "string", "string_utf8",
                                          "bitstring", "datetime", "date", "time")

def _obis(params: dict, method: str, default: ObisCode | None = None) -> ObisCode:
    raw = params.get("obis")
    if raw is None:
        if default is not None:
            return default
        raise RpcError(f'{method} needs params.obis, e.g. {{"obis": "1.0.99.1.0.255"}}')
    try:
        return ObisCode.parse(raw)
    except ObisError as exc:
        raise RpcError(f"params.obis: {exc}") from None


def _type_name(params: dict, method: str) -> str:
    name = params.get("type")
    if not isinstance(name, str) or not name.strip():
        raise RpcError(f"{method} needs params.type, the DLMS data type of the value "
                           f"(uint8, uint16, int32, boolean, enum, octet_string, string ...)")
    try:
        canonical = data_type_name(name)
    except ValueError as exc:
        raise RpcError(f"params.type: {exc}") from None
    if canonical in _UNWRITABLE:
        raise RpcError(f"params.type: {method} cannot write {canonical} values from JSON; "
                           f"one of: {', '.join(WRITABLE_TYPES)}")
    return canonical


def _bad_value(value: Any, type_name: str, wanted: str) -> RpcError:
    return RpcError(f"params.value must be {wanted} for {type_name}, got {json.dumps(value, default=str)}")


def _typed_value(value: Any, type_name: str) -> Any:
    """Check the value fits the type before anything goes to the meter.

    gurux fails deep inside request building on a value of the wrong kind (a number for an
    octet string, a list for a string, a word for a date-time): caught here, that is a parameter
    error for the caller, not a protocol error that would cost the meter its association.
    """
    if value is None:
        raise RpcError("params.value is required")
    if type_name in INTEGER_RANGES:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        lo, hi = INTEGER_RANGES[type_name]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise RpcError(f"params.value must be an integer {lo}..{hi} for {type_name}, got {json.dumps(value)}")
    elif type_name == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise _bad_value(value, type_name, "true or false")
    elif type_name in ("float32", "float64"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _bad_value(value, type_name, "a finite number")
        value = float(value)
    elif type_name in ("octet_string", "string", "string_utf8"):
        if not isinstance(value, str):
            raise _bad_value(value, type_name, "a string")
        if type_name == "string" and not value.isascii():
            raise _bad_value(value, type_name, "an ASCII string (string_utf8 takes any text)")
    elif type_name == "bitstring":
        if not isinstance(value, str) or set(value) - {"0", "1"}:
            raise _bad_value(value, type_name, 'a string of 0 and 1, e.g. "0101"')
    elif type_name in ("datetime", "date", "time"):
        value = _when_value(value, type_name)
    return value


def _when_value(value: Any, type_name: str) -> _dt.datetime:
    """ISO 8601 text to the datetime gurux encodes (date and time use only their part of it)."""
    examples = {"datetime": '"2024-03-31T02:00:00+01:00" (with its UTC offset)', "date": '"2024-03-31"',
                "time": '"02:00:00"'}
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            if type_name == "date":
                return _dt.datetime.combine(_dt.date.fromisoformat(text), _dt.time())
            if type_name == "time":
                return _dt.datetime.combine(_dt.date(2000, 1, 1), _dt.time.fromisoformat(text))
            when = _dt.datetime.fromisoformat(text)
            if when.tzinfo is not None:
                return when
        except ValueError:
            pass
    raise _bad_value(value, type_name, f"ISO 8601 text such as {examples[type_name]}")


# -- set ----------------------------------------------------------------------------------------


def set_command(params: dict) -> DeviceWork:
    code = _obis(params, "set")
    class_id = int_param(params, "classId", 3, 1, 0xFFFF)
    attribute = int_param(params, "attribute", 2, 1, 127)
    type_name = _type_name(params, "set")
    value = _typed_value(params.get("value"), type_name)
    ref = AttributeRef(code, class_id, attribute)

    async def run(device: DLMSDevice) -> dict:
        await device.shared_session().set(ref, value, type_name)
        return {"success": True, "obis": str(code), "classId": class_id, "attribute": attribute,
                "value": json_value(params.get("value")), "type": type_name}

    return DeviceWork(run)


# -- disconnect control ---------------------------------------------------------------------------


async def relay_state(session: SessionLike, obis: ObisCode) -> dict:
    refs = [AttributeRef(obis, DISCONNECT_CLASS, a) for a in (OUTPUT_STATE, CONTROL_STATE, CONTROL_MODE)]
    output, control, mode = await session.read(refs)
    for reading in (output, control):
        if reading.error is not None:
            raise RpcError(f"relay state not read: {reading.error}")
    state = control.value
    return {"obis": str(obis), "outputState": bool(output.value),
            "controlState": CONTROL_STATES.get(state, f"state {state}"),
            "controlMode": mode.value if mode.error is None else None}


def _relay_command(method_index: int | None) -> DeviceMethod:
    def build(params: dict) -> DeviceWork:
        name = {REMOTE_DISCONNECT: "disconnect", REMOTE_RECONNECT: "reconnectRelay", None: "relayState"}[method_index]
        code = _obis(params, name, DISCONNECT_CONTROL_OBIS)

        async def run(device: DLMSDevice) -> dict:
            session = device.shared_session()
            if method_index is not None:
                await session.action(AttributeRef(code, DISCONNECT_CLASS, method_index), 0, "int8")
            state = await relay_state(session, code)
            return {"success": True, **state} if method_index is not None else state

        return DeviceWork(run)

    return build


# -- clock ----------------------------------------------------------------------------------------


def _clock_config(device: DLMSDevice) -> ClockConfig:
    return device.config.meter_data.clock or ClockConfig()


def sync_clock_command(params: dict) -> DeviceWork:
    async def run(device: DLMSDevice) -> dict:
        config = _clock_config(device)
        return await sync_clock(device.shared_session(), config, rpc_work.DEVICE_RPC_TIMEOUT_S)

    return DeviceWork(run)


def read_clock_command(params: dict) -> DeviceWork:
    async def run(device: DLMSDevice) -> dict:
        reading = await read_clock(device.shared_session(), _clock_config(device), rpc_work.DEVICE_RPC_TIMEOUT_S)
        return reading.as_dict()

    return DeviceWork(run)


# -- readProfile ----------------------------------------------------------------------------------


def _when(params: dict, key: str, default: int | None) -> int:
    """Epoch ms or ISO 8601 (UTC when no offset is given)."""
    raw = params.get(key)
    if raw is None:
        if default is None:
            raise RpcError(f'readProfile needs params.{key}: ISO 8601 ("2024-03-31T00:00:00Z") or epoch ms')
        return default
    if isinstance(raw, bool):
        raise RpcError(f"params.{key} must be ISO 8601 or epoch ms, got {json.dumps(raw)}")
    if isinstance(raw, (int, float)):
        return int(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if text.isdigit():
            return int(text)
        try:
            when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if when.tzinfo is None:
                when = when.replace(tzinfo=_dt.timezone.utc)
            return int(when.timestamp() * 1000)
    raise RpcError(f"params.{key} must be ISO 8601 or epoch ms, got {json.dumps(raw)}")


def read_profile_command(params: dict) -> DeviceWork:
    code = _obis(params, "readProfile")
    now = int(time.time() * 1000)
    end = _when(params, "to", now)
    start = _when(params, "from", None)
    if start > end:
        raise RpcError(f"params.from ({to_datetime(start).isoformat()}) is after params.to "
                           f"({to_datetime(end).isoformat()})")
    if end - start > READ_PROFILE_MAX_DAYS * 86_400_000:
        raise RpcError(f"readProfile reads at most {READ_PROFILE_MAX_DAYS} days at once")
    send = params.get("send", False)
    if not isinstance(send, bool):
        raise RpcError(f"params.send must be true or false, got {json.dumps(send)}")

    async def run(device: DLMSDevice) -> dict:
        collector = device.collector
        reader = collector.reader(str(code)) if collector is not None else None
        config = reader.config if reader is not None else None

        def refused(exc) -> None:
            if reader is not None:
                reader.by_entry = True

        data = await read_range(device.shared_session(), str(code), start, end,
                                by_entry=reader.by_entry if reader is not None else False,
                                timeout_s=READ_PROFILE_TIMEOUT_S,
                                local_offset_min=config.range_offset_min if config is not None else None,
                                on_range_refused=refused)
        if config is None:  # not configured: every column under its OBIS
            config = ProfileConfig(code, 24, 1, 900, columns_by_index=tuple(
                (i, str(c.ref.obis) if c.ref.attribute == 2 else f"{c.ref.obis}:{c.ref.attribute}")
                for i, c in enumerate(data.columns) if not c.is_clock))
        entries = columns_for(config, data.columns).entries(data.rows, None)
        truncated = len(entries) > READ_PROFILE_MAX_ROWS
        rows = [{"ts": e.ts, "values": {k.key: v for k, v in e.values.items()}}
                for e in entries[:READ_PROFILE_MAX_ROWS]]
        sent = 0
        if send and entries and collector is not None:
            if not collector.deliver_entries(entries):
                raise RpcError(f"{device.name}: rows read but the gateway storage refused them")
            sent = len(entries)
        return {"obis": str(code), "from": to_datetime(start).isoformat(), "to": to_datetime(end).isoformat(),
                "columns": [{"obis": str(c.ref.obis), "classId": c.ref.class_id, "attribute": c.ref.attribute}
                            for c in data.columns],
                "capturePeriod": data.capture_period, "count": len(entries), "truncated": truncated,
                "sent": sent, "rows": rows}

    return DeviceWork(run, READ_PROFILE_TIMEOUT_S)


DEVICE_COMMANDS: dict[str, DeviceMethod] = {
    "set": set_command,
    "readProfile": read_profile_command,
    "disconnect": _relay_command(REMOTE_DISCONNECT),
    "reconnectRelay": _relay_command(REMOTE_RECONNECT),
    "relayState": _relay_command(None),
    "syncClock": sync_clock_command,
    "readClock": read_clock_command,
}


# -- shared attribute updates -------------------------------------------------------------------


async def apply_attribute_update(device, mapping: AttributeUpdateConfig, value: Any) -> str:
    """Write (or call) what ``mapping`` says for the new value; returns what was done, raises if refused."""
    session = device.shared_session()
    ref = mapping.ref
    if mapping.is_method:
        if mapping.methods:
            choice = json.dumps(value).strip('"').lower() if not isinstance(value, str) else value.strip().lower()
            index = dict(mapping.methods).get(choice)
            if index is None:
                raise ValueError(f"value {json.dumps(value)} of {mapping.key!r} maps to no method "
                                 f"(known: {', '.join(v for v, _ in mapping.methods)})")
        else:
            index = ref.attribute
        method = AttributeRef(ref.obis, ref.class_id, index)
        await session.action(method, mapping.method_value, mapping.type or "int8")
        return f"method {index} of {ref.class_id}/{ref.obis}"
    type_name = data_type_name(mapping.type) if mapping.type else ""
    typed = _typed_value(value, type_name)
    await session.set(ref, typed, type_name or None)
    return f"{ref} = {json.dumps(json_value(typed))}"


async def apply_attribute_updates(device, data: dict, log) -> None:
    """Each mapped key in order; one refusal does not stop the others."""
    by_key = {m.key: m for m in device.config.meter_data.attribute_updates}
    for key, value in data.items():
        mapping = by_key.get(key)
        if mapping is None:
            continue
        try:
            done = await asyncio.wait_for(apply_attribute_update(device, mapping, value), rpc_work.DEVICE_RPC_TIMEOUT_S)
        except RpcError as exc:
            log.error("%s: attribute %s=%s not written: %s", device.name, key, json.dumps(value), exc)
        except Exception as exc:  # noqa: BLE001 - the meter's refusal is logged, the connector goes on
            log.error("%s: attribute %s=%s not written: %s", device.name, key, json.dumps(value),
                      exc or type(exc).__name__)
        else:
            log.info("%s: attribute %s=%s written: %s", device.name, key, json.dumps(value), done)

