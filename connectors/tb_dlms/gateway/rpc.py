"""Server-side RPC: what ThingsBoard may ask of a meter or of the connector, and the replies.

Requests are checked on the gateway's thread (so a bad request is answered at once); the work
runs on the polling loop. Every failure becomes an ``{"error": ...}`` reply naming the problem.

Device RPCs (``{"device": "Meter 1", "data": {"id", "method", "params"}}``):
  getStats, reconnect, readAttributes, get {"obis", "classId"?, "attribute"?}; and from commands.py:
  set {"obis", "classId"?, "attribute"?, "value", "type"}, readProfile {"obis", "from", "to"?, "send"?},
  disconnect / reconnectRelay / relayState {"obis"?}, syncClock, readClock; and from key_change.py:
  changeKeys {"keyFile"} | {"blockCipherKey": "${VAR}", "authenticationKey": "${VAR}"}, "securitySetup"?.
  Params may also come as the gateway's ``"obis=1.0.32.7.0.255;classId=3;attribute=2"`` string.
Connector RPCs (``{"method": "dlms_<name>", "params", "id"}``):
  dlms_getStats {"device"?}, dlms_reconnect {"device": "Meter 1"} | {"all": true} | none;
  and from commissioning.py, for a meter given by its connection: dlms_probe {"connection", "timeseries"?,
  "attributes"?, "timeoutMs"?}, dlms_discover {"connection", "deviceName"?, "timeoutMs"?}.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Coroutine, Mapping

from ..protocol.obis import ObisCode, ObisError
from ..protocol.readings import AttributeRef
from .commands import DEVICE_COMMANDS
from .device import DLMSDevice
from .key_change import change_keys_command
from .rpc_work import DeviceMethod, DeviceRun, DeviceWork, RpcError, int_param

@dataclass(frozen=True, slots=True)
class RpcRequest:
    method: str
    #: As ThingsBoard sent them (an object, nothing, or JSON in a string): parse_params() reads them.
    params: Any
    req_id: Any
    device: str | None = None


def parse_params(raw: Any) -> dict:
    """Params as ThingsBoard sends them: an object, nothing, or an object encoded as a string."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            if "=" in raw:
                return key_value_params(raw)
            raise RpcError(f"params must be a JSON object, got the string {raw[:40]!r}") from None
        if raw is None:
            return {}
    if not isinstance(raw, dict):
        raise RpcError(f"params must be a JSON object, got {type(raw).__name__}")
    return raw


def key_value_params(text: str) -> dict:
    """``obis=1.0.32.7.0.255;classId=3;attribute=2`` (the gateway's Modbus-style RPC strings)."""
    out: dict[str, Any] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise RpcError(f"params: {part.strip()!r} is not key=value")
        value = value.strip()
        try:
            out[key.strip()] = json.loads(value)  # numbers, true/false, quoted strings
        except ValueError:
            out[key.strip()] = value
    return out


def parse_device_request(content: dict) -> RpcRequest | None:
    """None for content that is not a request (e.g. our own reply echoed by a plain MQTT broker)."""
    data = content.get("data")
    # A request carries a "method" key, even an empty or null one (and is answered); our own
    # replies echoed by a plain broker carry none.
    if not isinstance(data, dict) or "method" not in data:
        return None
    method = data["method"]
    if method is None or method == "":
        raise RpcError(f"RPC for {content.get('device')}: request has no method; "
                       f"known: {', '.join(DEVICE_METHODS)}")
    if not isinstance(method, str):
        raise RpcError(f"method must be a string, got {type(method).__name__}")
    return RpcRequest(method, data.get("params"), data.get("id", content.get("id")), str(content["device"]))


def parse_connector_request(content: dict, connector_type: str) -> RpcRequest:
    method = content.get("method")
    if not isinstance(method, str) or not method:
        raise RpcError("request has no method")
    prefix = f"{connector_type}_"
    if method.startswith(prefix):
        method = method[len(prefix):]
    return RpcRequest(method, content.get("params"), content.get("id"))


# -- device methods ---------------------------------------------------------------------------

async def _get_stats(device: DLMSDevice) -> dict:
    return device.report()


async def _reconnect(device: DLMSDevice) -> dict:
    return await device.reconnect()


async def _read_attributes(device: DLMSDevice) -> dict:
    if not device.config.attributes:
        raise RpcError(f"{device.name} maps no attributes")
    return await device.read_attributes()


def _get(params: dict) -> DeviceWork:
    obis = params.get("obis")
    if obis is None:
        raise RpcError('get needs params.obis, e.g. {"obis": "1.0.32.7.0.255"}')
    try:
        code = ObisCode.parse(obis)
    except ObisError as exc:
        raise RpcError(f"params.obis: {exc}") from None
    class_id = int_param(params, "classId", 3, 1, 0xFFFF)
    attribute = int_param(params, "attribute", 2, 1, 127)
    ref = AttributeRef(code, class_id, attribute)

    async def run(device: DLMSDevice) -> dict:
        return await device.get(ref)

    return DeviceWork(run)


def _fixed(run: DeviceRun) -> DeviceMethod:
    """Methods without parameters accept and ignore any (widgets often send {} or a timeout)."""
    work = DeviceWork(run)
    return lambda params: work


#: Method name -> builder that validates params and returns the work to run on the loop.
DEVICE_METHODS: dict[str, DeviceMethod] = {
    "getStats": _fixed(_get_stats),
    "reconnect": _fixed(_reconnect),
    "readAttributes": _fixed(_read_attributes),
    "get": _get,
    **DEVICE_COMMANDS,
    "changeKeys": change_keys_command,
}


def prepare_device_call(request: RpcRequest,
                        devices: Mapping[str, DLMSDevice]) -> Callable[[], Coroutine[Any, Any, dict]]:
    """Check a device request; the returned coroutine function does the work, bounded in time."""
    device = devices.get(request.device) if request.device is not None else None
    if device is None:
        raise RpcError(f"unknown meter {request.device!r}: not configured in this connector")
    build = DEVICE_METHODS.get(request.method)
    if build is None:
        raise RpcError(f"unknown method {request.method!r} for meter {device.name}; "
                       f"known: {', '.join(DEVICE_METHODS)}")
    work = build(parse_params(request.params))
    timeout = work.bound_s()

    async def call() -> dict:
        try:
            return await asyncio.wait_for(work.run(device), timeout)
        except TimeoutError:
            return {"error": f"{device.name}: {request.method} did not finish within {timeout:g} s"}
        except RpcError as exc:
            return {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the meter's failure is the reply
            return {"error": f"{device.name}: {request.method} failed: {exc or type(exc).__name__}"}

    return call


# -- connector methods ------------------------------------------------------------------------


def _pick_devices(params: dict, devices: Mapping[str, DLMSDevice], method: str) -> list[DLMSDevice]:
    name = params.get("device")
    everything = params.get("all")
    if everything is not None and not isinstance(everything, bool):
        raise RpcError(f"params.all must be true or false, got {json.dumps(everything)}")
    if name is not None:
        if not isinstance(name, str):
            raise RpcError(f"params.device must be a meter name (string), got {json.dumps(name)}")
        if everything:
            raise RpcError(f'{method}: give either params.device or params.all, not both')
        if name not in devices:
            raise RpcError(f"unknown meter {name!r}: not configured in this connector")
        return [devices[name]]
    if everything is False:
        raise RpcError(f'{method}: params.all is false and no params.device given: nothing to do')
    return list(devices.values())


async def _all_stats(params: dict, devices: Mapping[str, DLMSDevice]) -> dict:
    chosen = _pick_devices(params, devices, "dlms_getStats")
    meters = {d.name: d.report() for d in chosen}
    return {"meters": meters, "count": len(meters),
            "connected": sum(1 for d in chosen if d.connected)}


async def _reconnect_many(params: dict, devices: Mapping[str, DLMSDevice]) -> dict:
    chosen = _pick_devices(params, devices, "dlms_reconnect")
    await asyncio.gather(*(d.reconnect() for d in chosen))
    return {"success": True, "reconnected": [d.name for d in chosen]}


ConnectorRun = Callable[[dict, Mapping[str, DLMSDevice]], Awaitable[dict]]
CONNECTOR_METHODS: dict[str, ConnectorRun] = {
    "getStats": _all_stats,
    "reconnect": _reconnect_many,
}


def prepare_connector_call(request: RpcRequest, devices: Mapping[str, DLMSDevice],
                           connector_type: str) -> Callable[[], Coroutine[Any, Any, dict]]:
    run = CONNECTOR_METHODS.get(request.method)
    if run is None:
        known = ", ".join(f"{connector_type}_{m}" for m in (*CONNECTOR_METHODS, "probe", "discover"))
        raise RpcError(f"unknown method {connector_type}_{request.method}; known: {known}")
    params = parse_params(request.params)
    _pick_devices(params, devices, f"{connector_type}_{request.method}")  # reject bad params before queueing

    async def call() -> dict:
        try:
            return await run(params, devices)
        except RpcError as exc:
            return {"error": str(exc)}

    return call
