"""Check the ThingsBoard side the way the gateway will meet it: reachable, token, answers like ThingsBoard.

A broker that accepts the token but is not ThingsBoard (a plain Mosquitto, the wrong host) gets no
meter data at all: the gateway core sends nothing from its storage until ThingsBoard answers its
``getSessionLimits`` RPC (see /work/shared/notes/thingsboard-gateway.md), and says only "Cannot
retrieve service configuration". So the check sends that very RPC, as the gateway does, and waits
a few seconds for the answer ThingsBoard gives (``maxPayloadSize`` / ``rateLimits``).
"""
from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import asdict, dataclass

#: ThingsBoard answers getSessionLimits in milliseconds; the gateway itself asks with a 5 s timeout.
ANSWER_TIMEOUT_S = 5.0
#: Far above the gateway's own client-side RPC ids (1, 2, ...): never mistaken for one of its replies.
REQUEST_ID = 987_001


@dataclass
class PlatformCheck:
    #: ``thingsboard`` (all fine), ``unreachable``, ``refused`` (token), ``not_thingsboard``, ``skipped``.
    status: str
    endpoint: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status in ("thingsboard", "skipped")

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def check_platform(config: dict, timeout: float = ANSWER_TIMEOUT_S) -> PlatformCheck:
    tb = config.get("thingsboard") or {}
    host, port = str(tb.get("host")), _port(tb.get("port", 1883))
    endpoint = f"{host}:{port}"
    security = tb.get("security") or {}
    if security.get("type", "accessToken") != "accessToken" or security.get("caCert"):
        return PlatformCheck("skipped", endpoint, f"not checked: security type {security.get('type')!r} "
                                                  "(only plain accessToken is checked)")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return PlatformCheck("unreachable", endpoint,
                             f"cannot reach {endpoint}: {exc.strerror or exc}; check thingsboard.host/port "
                             "(TB_GATEWAY_HOST, TB_GATEWAY_PORT) and the firewall")
    return _mqtt_check(host, port, str(security.get("accessToken")), endpoint, timeout)


def _port(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1883


def _mqtt_check(host: str, port: int, token: str, endpoint: str, timeout: float) -> PlatformCheck:
    import paho.mqtt.client as mqtt

    connected, answered = threading.Event(), threading.Event()
    outcome: dict = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"tb-dlms-test-config-{os.getpid()}",
                         protocol=mqtt.MQTTv311)
    client.username_pw_set(token)

    def on_connect(c, userdata, flags, reason_code, properties=None):
        outcome["connack"] = reason_code
        if not reason_code.is_failure:
            c.subscribe("v1/devices/me/rpc/response/+", qos=1)
        connected.set()

    def on_subscribe(c, userdata, mid, reason_codes, properties=None):
        c.publish(f"v1/devices/me/rpc/request/{REQUEST_ID}",
                  json.dumps({"method": "getSessionLimits", "params": {"timeout": 5000}}), qos=1)

    def on_message(c, userdata, msg):
        if msg.topic.endswith(f"/{REQUEST_ID}"):
            try:
                outcome["answer"] = json.loads(msg.payload)
            except ValueError:
                outcome["answer"] = None
            answered.set()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        return PlatformCheck("unreachable", endpoint, f"no MQTT connection to {endpoint}: {exc}")
    client.loop_start()
    try:
        if not connected.wait(timeout):
            return PlatformCheck("unreachable", endpoint, f"{endpoint} accepts TCP but sent no MQTT CONNACK within "
                                                          f"{timeout:g} s: is it an MQTT port (1883)?")
        connack = outcome["connack"]
        if connack.is_failure:
            return PlatformCheck("refused", endpoint, f"{endpoint} refused the access token ({connack}): set "
                                                      "TB_GATEWAY_TOKEN to the gateway device's access token")
        answered.wait(timeout)
        answer = outcome.get("answer")
        if isinstance(answer, dict) and ("maxPayloadSize" in answer or "rateLimits" in answer):
            return PlatformCheck("thingsboard", endpoint, f"{endpoint} accepted the token and answered the "
                                                           "gateway's getSessionLimits request like ThingsBoard")
        return PlatformCheck("not_thingsboard", endpoint,
                             f"{endpoint} accepted the token but did not answer the getSessionLimits request "
                             f"within {timeout:g} s: it does not behave like ThingsBoard (a plain MQTT broker?). "
                             "The gateway would buffer every reading and send none.")
    finally:
        client.disconnect()
        client.loop_stop()
