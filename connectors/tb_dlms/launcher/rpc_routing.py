"""Device RPCs reach a dlms meter that is disconnected at ThingsBoard.

The connector disconnects a meter at ThingsBoard while it does not answer (its breaker is open) or
has hung up (a meter that calls in), so that ThingsBoard's own "active" state follows the meter.
The 3.8.5 gateway routes a device RPC only to a device it holds as connected: any other request
is put back in its queue until the request's timeout (5 s by default) and then answered with a bare
``{"error": "Request timeout", "code": 408}``. So the RPCs an operator reaches for first on a meter
that went quiet (``getStats``, ``reconnect``) would time out, and a meter that calls in could never
give its clear "meter not connected" answer or wait ``callInWaitS`` for it to call.

This fix keeps the gateway's loop as it is for every device it holds, and for a device it does not
hold asks each dlms connector whether the device is one of its meters (``owns_device``); that
connector then answers it as it answers every RPC. Requests for devices nobody owns are queued and
time out exactly as before. Written against the 3.8.5 loop (``__rpc_to_devices_processing``), and
installed only on that version.
"""
from __future__ import annotations

import logging
from json import dumps
from queue import Empty
from time import monotonic
from typing import Any

from .remote_config import gateway_version

log = logging.getLogger("tb_dlms.launcher")

PATCHED_VERSION = "3.8.5"
_METHOD = "_TBGatewayService__rpc_to_devices_processing"
_MARK = "_tb_dlms_rpc_routing"


def owner_of(service: Any, device: str) -> Any:
    """The dlms connector whose meter ``device`` is, when the gateway does not hold it as connected."""
    for connector in list(getattr(service, "available_connectors_by_name", {}).values()):
        owns = getattr(connector, "owns_device", None)
        try:
            if callable(owns) and owns(device):
                return connector
        except Exception:  # noqa: BLE001 - a connector that cannot say is not the owner
            continue
    return None


def route(service: Any) -> None:
    """The gateway's device-RPC loop, with the owner fallback (one pass per request, as the original)."""
    queue = service._TBGatewayService__rpc_to_devices_queue
    renamed = service._TBGatewayService__renamed_devices
    while not service.stopped:
        try:
            request_id, content, received_time = queue.get_nowait()
        except Empty:
            service.stop_event.wait(0.1)
            continue
        try:
            params = content.get("params") if isinstance(content.get("params"), dict) else {}
            timeout = params.get("timeout", service.DEFAULT_TIMEOUT)
            device = content.get("device")
            original = next((name for name, new in renamed.items() if new == device), None)
            if original is not None:
                content["device"] = device = original
            devices = service.get_devices()
            if device in devices and devices[device].get("connector") is None:
                log.error("Received RPC request but connector for the device %s not found", device)
                continue
            connector = devices[device]["connector"] if device in devices else owner_of(service, device)
            if connector is not None:
                content["id"] = request_id
                result = connector.server_side_rpc_handler(content)
                if isinstance(result, dict) and "error" in result:
                    service.send_rpc_reply(device, request_id, dumps(result), success_sent=False)
            elif monotonic() - received_time > timeout:
                log.error("RPC request %s timeout", request_id)
                service.send_rpc_reply(device, request_id, "{\"error\":\"Request timeout\", \"code\": 408}")
            else:
                queue.put((request_id, content, received_time))
                service.stop_event.wait(0.05)
        except Exception as exc:  # noqa: BLE001 - one bad request must not end the loop
            log.error("RPC request %s for %s not routed: %s", request_id, content.get("device"), exc)


def apply(service_cls: Any) -> bool:
    """Install on the gateway class before it is constructed (its thread takes the method then)."""
    found = gateway_version()
    if found != PATCHED_VERSION:
        log.warning("RPC routing to disconnected meters NOT installed: written for thingsboard-gateway %s, "
                    "found %s", PATCHED_VERSION, found)
        return False
    original = getattr(service_cls, _METHOD, None)
    if original is None or getattr(original, _MARK, False):
        return False

    def processing(self: Any) -> None:
        route(self)

    setattr(processing, _MARK, True)
    setattr(service_cls, _METHOD, processing)
    return True
