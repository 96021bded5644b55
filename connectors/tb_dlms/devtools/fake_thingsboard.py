"""A small stand-in for ThingsBoard on the gateway MQTT API, over a plain MQTT broker.

The real gateway connects to the broker with its access token as username; this client connects to
the same broker and plays the server side:

* answers the gateway's ``getSessionLimits`` RPC (without it the gateway never counts as connected
  and buffers forever);
* records device connects (``v1/gateway/connect``), telemetry (``v1/gateway/telemetry``), attributes
  (``v1/gateway/attributes``), RPC replies (``v1/gateway/rpc`` and ``v1/devices/me/rpc/response/+``)
  and the gateway's own telemetry/attributes;
* sends device RPCs (``v1/gateway/rpc``) and connector RPCs (``v1/devices/me/rpc/request/<id>``) and
  waits for their replies;
* offers thread-safe waiting on any condition over what was recorded (``wait_for``);
* holds the gateway device's attributes as ThingsBoard does: shared ones written by "the UI"
  (``set_shared_attributes``, pushed on ``v1/devices/me/attributes``; ``delete_shared_attributes``
  pushes ``{"deleted": [...]}``), client ones as the gateway publishes them (``client_attributes``:
  what the gateway reports, e.g. its connector configurations), and answers the gateway's
  ``v1/devices/me/attributes/request/<n>`` on ``.../response/<n>`` with ``{"client", "shared"}``.
  Client attributes are never pushed back as shared ones. (The broker itself still echoes the
  gateway's publications to it: run the gateway with ``thingsboard_topics=True``, see
  devtools/thingsboard_topics.py.)

On a plain broker our own publications come back to us (we subscribe to what we publish to): RPC
content carrying ``data.method`` is a request (ours), not a reply, and request ids we sent are ours.

CLI (demo): ``python -m tb_dlms.devtools.fake_thingsboard --live-table --port P`` prints one row per
meter with its latest readings, units and health (:mod:`tb_dlms.devtools.live_table`), refreshed in
place on a terminal, as plain snapshots when piped.
"""
from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import paho.mqtt.client as mqtt

DEFAULT_SESSION_LIMITS = {
    "maxPayloadSize": 65536,
    "maxInflightMessages": 100,
    # "0:0," means "no limit" to tb-mqtt-client (it uses that string itself for absent limits).
    "rateLimits": {"messages": "0:0,", "telemetryMessages": "0:0,", "telemetryDataPoints": "0:0,"},
    "gatewayRateLimits": {"messages": "0:0,", "telemetryMessages": "0:0,", "telemetryDataPoints": "0:0,"},
}

#: Our request ids start high so they never collide with the gateway's own client-side RPC ids (1, 2, ...).
_FIRST_REQUEST_ID = 900_000


class RpcTimeout(TimeoutError):
    pass


@dataclass
class Message:
    topic: str
    payload: Any  # parsed JSON when possible, else the raw text/bytes
    received: float  # time.time() when it arrived


@dataclass
class TelemetryPoint:
    device: str
    ts: int | None  # ms, as sent by the gateway (the meter's timestamp)
    values: dict
    received: float  # time.time() when it arrived


@dataclass
class DeviceState:
    name: str
    type: str | None = None
    connected: bool = False
    telemetry: dict = field(default_factory=dict)  # key -> latest value
    telemetry_ts: int | None = None  # ms of the latest telemetry entry
    attributes: dict = field(default_factory=dict)
    last_update: float | None = None  # time.time() of last telemetry/attribute message
    messages: int = 0
    last_connect: float | None = None
    last_disconnect: float | None = None


def _parse(payload: bytes) -> Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload
    try:
        return json.loads(text)
    except ValueError:
        return text


def _maybe_json(value: Any) -> Any:
    """The gateway sometimes sends RPC reply data as a JSON string (``dumps(rpc_response)``)."""
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class FakeThingsBoard:
    """Server side of the ThingsBoard gateway MQTT API against a plain broker."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, *, session_limits: dict | None = None,
                 answer_session_limits: bool = True, client_id: str | None = None) -> None:
        self.host = host
        self.port = port
        self.session_limits = dict(DEFAULT_SESSION_LIMITS if session_limits is None else session_limits)
        self.answer_session_limits = answer_session_limits
        #: ThingsBoard's device inactivity timeout (its default: 600 s); tests shorten it.
        self.inactivity_timeout_s = 600.0
        self._cond = threading.Condition()
        self._ids = itertools.count(_FIRST_REQUEST_ID)
        self._own_request_ids: set[str] = set()
        self._subscribed = False
        self._connected = False
        # Records (guarded by _cond).
        self.messages: list[Message] = []
        self.connects: list[dict] = []  # {"device", "type", "received"}
        self.disconnects: list[dict] = []
        self.telemetry: list[TelemetryPoint] = []
        self.attributes: list[dict] = []  # {"device", "values", "received"}
        self.devices: dict[str, DeviceState] = {}
        self.gateway_telemetry: list[Message] = []
        self.gateway_attributes: list[Message] = []
        #: The gateway device's attributes, by scope, as ThingsBoard would store them.
        self.client_attributes: dict[str, Any] = {}
        self.shared_attributes: dict[str, Any] = {}
        self.attribute_requests: list[Message] = []
        #: Payloads we published on v1/devices/me/attributes, recognised when the broker returns them.
        self._own_attribute_payloads: list[bytes] = []
        self.device_rpc_replies: dict[Any, dict] = {}  # request id -> full message {"device","id","data"}
        self.connector_rpc_replies: dict[str, Any] = {}  # request id (str) -> reply payload
        self.session_limit_requests: list[Message] = []
        self.gateway_rpc_requests: list[Message] = []  # other client-side RPCs of the gateway
        self._listeners: list[Callable[[Message], None]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"fake-tb-{id(self):x}", protocol=mqtt.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 2)  # type: ignore[arg-type]  # paho sleeps any float; 0.2 s in tests

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "FakeThingsBoard":
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self.wait_for(lambda: self._subscribed, timeout, "fake ThingsBoard subscribed to the broker")
        return self

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def __enter__(self) -> "FakeThingsBoard":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        return self._connected

    def add_listener(self, callback: Callable[[Message], None]) -> None:
        """Called (from the MQTT thread) for every message after it was recorded."""
        self._listeners.append(callback)

    # -- MQTT callbacks ----------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            return
        with self._cond:
            self._connected = True
        client.subscribe([("v1/gateway/#", 1), ("v1/devices/me/#", 1)])

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        with self._cond:
            self._connected = False
            self._subscribed = False
            self._cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties=None) -> None:
        with self._cond:
            self._subscribed = True
            self._cond.notify_all()

    def _on_message(self, client, userdata, msg) -> None:
        message = Message(msg.topic, _parse(msg.payload), time.time())
        reply: tuple[str, Any] | None = None
        with self._cond:
            if msg.topic == "v1/devices/me/attributes" and msg.payload in self._own_attribute_payloads:
                self._own_attribute_payloads.remove(msg.payload)  # our shared update coming back
                return
            self.messages.append(message)
            try:
                reply = self._record(message)
            except Exception as exc:  # a malformed message must not kill the MQTT thread
                print(f"fake ThingsBoard: cannot handle {msg.topic}: {exc!r}", file=sys.stderr)
            self._cond.notify_all()
        if reply is not None:
            client.publish(reply[0], json.dumps(reply[1]), qos=1)
        for listener in list(self._listeners):
            try:
                listener(message)
            except Exception as exc:
                print(f"fake ThingsBoard: listener failed: {exc!r}", file=sys.stderr)

    def _device(self, name: str) -> DeviceState:
        state = self.devices.get(name)
        if state is None:
            state = self.devices[name] = DeviceState(name)
        return state

    def _record(self, m: Message) -> tuple[str, Any] | None:
        topic, p = m.topic, m.payload
        if topic == "v1/gateway/connect" and isinstance(p, dict):
            self.connects.append({"device": p.get("device"), "type": p.get("type"), "received": m.received})
            state = self._device(str(p.get("device")))
            state.connected = True
            state.last_connect = m.received
            state.type = p.get("type", state.type)
        elif topic == "v1/gateway/disconnect" and isinstance(p, dict):
            self.disconnects.append({"device": p.get("device"), "received": m.received})
            if p.get("device") in self.devices:
                self.devices[p["device"]].connected = False
                self.devices[p["device"]].last_disconnect = m.received
        elif topic == "v1/gateway/telemetry" and isinstance(p, dict):
            for device, entries in p.items():
                state = self._device(device)
                for entry in entries if isinstance(entries, list) else [entries]:
                    if isinstance(entry, dict) and "values" in entry:
                        ts, values = entry.get("ts"), entry["values"]
                    else:
                        ts, values = None, entry
                    self.telemetry.append(TelemetryPoint(device, ts, dict(values), m.received))
                    state.telemetry.update(values)
                    if ts is not None and (state.telemetry_ts is None or ts >= state.telemetry_ts):
                        state.telemetry_ts = ts
                state.last_update = m.received
                state.messages += 1
        elif topic == "v1/gateway/attributes" and isinstance(p, dict):
            if set(p) == {"device", "data"}:
                return None  # an attribute update sent by us (server -> gateway) coming back
            for device, values in p.items():
                if not isinstance(values, dict):
                    continue
                self.attributes.append({"device": device, "values": dict(values), "received": m.received})
                state = self._device(device)
                state.attributes.update(values)
                state.last_update = m.received
                state.messages += 1
        elif topic == "v1/gateway/rpc" and isinstance(p, dict):
            data = _maybe_json(p.get("data"))
            if isinstance(data, dict) and "method" in data:
                return None  # our own request coming back through the broker
            if "id" in p:
                self.device_rpc_replies[p["id"]] = {"device": p.get("device"), "id": p["id"], "data": data}
        elif topic.startswith("v1/devices/me/rpc/request/"):
            req_id = topic.rsplit("/", 1)[1]
            if req_id in self._own_request_ids:
                return None  # our connector RPC coming back
            if isinstance(p, dict) and p.get("method") == "getSessionLimits":
                self.session_limit_requests.append(m)
                if self.answer_session_limits:
                    return f"v1/devices/me/rpc/response/{req_id}", self.session_limits
            else:
                self.gateway_rpc_requests.append(m)
        elif topic.startswith("v1/devices/me/rpc/response/"):
            req_id = topic.rsplit("/", 1)[1]
            if req_id in self._own_request_ids:
                self.connector_rpc_replies[req_id] = _maybe_json(p)
        elif topic == "v1/devices/me/telemetry":
            self.gateway_telemetry.append(m)
        elif topic == "v1/devices/me/attributes":
            self.gateway_attributes.append(m)
            if isinstance(p, dict):
                self.client_attributes.update(p)
        elif topic.startswith("v1/devices/me/attributes/request/"):
            self.attribute_requests.append(m)
            return (f"v1/devices/me/attributes/response/{topic.rsplit('/', 1)[1]}",
                    self._attribute_response(p if isinstance(p, dict) else {}))
        return None

    def _attribute_response(self, request: dict) -> dict:
        """ThingsBoard's answer: the keys asked for, or every attribute of both scopes when none are."""
        def keys(name):
            value = request.get(name)
            return [k for k in value.split(",") if k] if isinstance(value, str) else None

        client_keys, shared_keys = keys("clientKeys"), keys("sharedKeys")
        everything = client_keys is None and shared_keys is None
        out = {}
        for scope, store, wanted in (("client", self.client_attributes, client_keys),
                                     ("shared", self.shared_attributes, shared_keys)):
            if everything or wanted is not None:
                values = {k: v for k, v in store.items() if everything or k in wanted}
                if values:
                    out[scope] = values
        return out

    # -- waiting -----------------------------------------------------------------------------
    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        """Wait until ``predicate()`` (called under the lock) is truthy; return its value.

        Raises TimeoutError naming ``what`` and summarising what was received.
        """
        with self._cond:
            result = self._cond.wait_for(predicate, timeout)
            if not result:
                raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}; {self._summary()}")
            return result

    def _summary(self) -> str:
        devices = ", ".join(
            f"{d.name}(type={d.type}, keys={sorted(d.telemetry)[:8]}, attrs={sorted(d.attributes)[:8]})"
            for d in self.devices.values()) or "none"
        return (f"received {len(self.messages)} messages, {len(self.session_limit_requests)} getSessionLimits, "
                f"{len(self.connects)} connects, {len(self.telemetry)} telemetry entries; devices: {devices}")

    def summary(self) -> str:
        with self._cond:
            return self._summary()

    def wait_session_limits_requested(self, timeout: float = 20.0) -> Message:
        return self.wait_for(lambda: self.session_limit_requests and self.session_limit_requests[0], timeout,
                             "the gateway's getSessionLimits RPC")

    def _active(self, device: str) -> bool:
        """ThingsBoard's "active" server attribute of a gateway device: kept active while the gateway
        holds it connected (the gateway's "overwrite activity time"), otherwise until the inactivity
        timeout has passed since its last telemetry or attributes (every message is activity)."""
        state = self.devices.get(device)
        if state is None:
            return False
        if state.connected:
            return True
        last = max(t for t in (state.last_update, state.last_connect, 0.0) if t is not None)
        return time.time() - last < self.inactivity_timeout_s

    def is_active(self, device: str) -> bool:
        with self._cond:
            return self._active(device)

    def wait_active(self, device: str, active: bool = True, timeout: float = 30.0) -> None:
        """Wait until ``device`` is (in)active; re-checked at least every 0.2 s (time alone ends activity)."""
        deadline = time.time() + timeout
        with self._cond:
            while self._active(device) != active:
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {device!r} to become "
                                       f"{'active' if active else 'inactive'}; {self._summary()}")
                self._cond.wait(min(left, 0.2))

    def wait_connect(self, device: str, timeout: float = 30.0) -> dict:
        return self.wait_for(lambda: next((c for c in self.connects if c["device"] == device), None), timeout,
                             f"v1/gateway/connect of {device!r}")

    def wait_telemetry(self, device: str, keys: tuple | list | set = (), timeout: float = 30.0,
                       since: float | None = None) -> list[TelemetryPoint]:
        """Telemetry entries of ``device`` received after ``since`` once together they hold all ``keys``."""
        keys = set(keys)

        def ready():
            points = [t for t in self.telemetry if t.device == device and (since is None or t.received >= since)]
            seen = set().union(*(t.values for t in points)) if points else set()
            return points if points and keys <= seen else None

        return self.wait_for(ready, timeout, f"telemetry {sorted(keys) or ''} of {device!r}")

    def wait_attributes(self, device: str, keys: tuple | list | set = (), timeout: float = 30.0) -> dict:
        keys = set(keys)

        def ready():
            state = self.devices.get(device)
            if state and state.attributes and keys <= set(state.attributes):
                return dict(state.attributes)
            return None

        return self.wait_for(ready, timeout, f"attributes {sorted(keys) or ''} of {device!r}")

    def telemetry_of(self, device: str) -> list[TelemetryPoint]:
        with self._cond:
            return [t for t in self.telemetry if t.device == device]

    def latest(self, device: str) -> DeviceState | None:
        with self._cond:
            state = self.devices.get(device)
            if state is None:
                return None
            return DeviceState(state.name, state.type, state.connected, dict(state.telemetry), state.telemetry_ts,
                               dict(state.attributes), state.last_update, state.messages)

    # -- sending -----------------------------------------------------------------------------
    def _next_id(self) -> int:
        with self._cond:
            req_id = next(self._ids)
            self._own_request_ids.add(str(req_id))
            return req_id

    def send_device_rpc(self, device: str, method: str, params: Any = None) -> int:
        req_id = self._next_id()
        payload = {"device": device, "data": {"id": req_id, "method": method,
                                              "params": {} if params is None else params}}
        self.client.publish("v1/gateway/rpc", json.dumps(payload), qos=1)
        return req_id

    def device_rpc(self, device: str, method: str, params: Any = None, timeout: float = 30.0) -> Any:
        """Send a device RPC and return the reply's ``data`` (parsed when it is JSON text)."""
        req_id = self.send_device_rpc(device, method, params)
        try:
            reply = self.wait_for(lambda: self.device_rpc_replies.get(req_id), timeout,
                                  f"reply to device RPC {method!r} (id {req_id}) for {device!r}")
        except TimeoutError as exc:
            raise RpcTimeout(str(exc)) from None
        return reply["data"]

    def send_connector_rpc(self, method: str, params: Any = None) -> str:
        req_id = str(self._next_id())
        payload = {"method": method, "params": {} if params is None else params}
        self.client.publish(f"v1/devices/me/rpc/request/{req_id}", json.dumps(payload), qos=1)
        return req_id

    def connector_rpc(self, method: str, params: Any = None, timeout: float = 30.0) -> Any:
        """Send a server-side RPC to the gateway device (e.g. ``dlms_getStats``) and return the reply."""
        req_id = self.send_connector_rpc(method, params)
        try:
            return self.wait_for(lambda: self.connector_rpc_replies.get(req_id) is not None
                                 and [self.connector_rpc_replies[req_id]],
                                 timeout, f"reply to connector RPC {method!r} (id {req_id})")[0]
        except TimeoutError as exc:
            raise RpcTimeout(str(exc)) from None

    def set_shared_attributes(self, values: dict) -> None:
        """Write shared attributes of the gateway device, as ThingsBoard's UI does (pushed at once)."""
        payload = json.dumps(values).encode()
        with self._cond:
            self.shared_attributes.update(values)
            self._own_attribute_payloads.append(payload)
        self.client.publish("v1/devices/me/attributes", payload, qos=1)

    def delete_shared_attributes(self, keys: list[str]) -> None:
        payload = json.dumps({"deleted": list(keys)}).encode()
        with self._cond:
            for key in keys:
                self.shared_attributes.pop(key, None)
            self._own_attribute_payloads.append(payload)
        self.client.publish("v1/devices/me/attributes", payload, qos=1)

    def client_attribute(self, key: str) -> Any:
        with self._cond:
            return self.client_attributes.get(key)

    def send_attribute_update(self, device: str, data: dict) -> None:
        """Shared attribute update for a device (server -> gateway)."""
        self.client.publish("v1/gateway/attributes", json.dumps({"device": device, "data": data}), qos=1)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Fake ThingsBoard server side of the gateway MQTT API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="MQTT broker port")
    parser.add_argument("--live-table", action="store_true", help="print one row per meter with latest values")
    parser.add_argument("--interval", type=float, default=1.0, help="table refresh period (s)")
    parser.add_argument("--duration", type=float, default=None, help="exit after N seconds")
    args = parser.parse_args(argv)
    tb = FakeThingsBoard(args.host, args.port).start()
    try:
        if args.live_table:
            from .live_table import run_live_table

            run_live_table(tb, args.duration, args.interval)
        else:
            stop = threading.Event()
            tb.add_listener(lambda m: print(m.topic, json.dumps(m.payload) if not isinstance(m.payload, bytes)
                                            else m.payload, flush=True))
            try:
                stop.wait(args.duration)
            except KeyboardInterrupt:
                pass
    finally:
        tb.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
