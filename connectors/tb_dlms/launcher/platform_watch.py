"""One clear warning when the platform does not answer the gateway's session-limits request.

The gateway core (3.8.5) sends nothing from its storage until ThingsBoard answers the
``getSessionLimits`` RPC it publishes after every connect (``TBDeviceMqttClient.
request_service_configuration``); a plain MQTT broker or a wrong host never answers, and the only
line the gateway logs ("Cannot retrieve service configuration, session will use default
configuration", from the CONNACK properties) reads as if all were well. We wrap that request:
if ``rate_limits_received`` is still false ``ANSWER_WAIT_S`` later, the service log says once that
readings are buffered and not sent, and once more (info) if an answer comes after all.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any

#: ThingsBoard answers in milliseconds; the gateway itself asks with a 5 s timeout.
ANSWER_WAIT_S = float(os.environ.get("TB_DLMS_SESSION_LIMITS_WAIT_S", "10"))
_MARK = "_tb_dlms_watched"

log = logging.getLogger("service")  # the gateway's service.log (and console): where operators look


class _Watch:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.warned = False

    def arm(self, client) -> None:
        timer = threading.Timer(ANSWER_WAIT_S, self.check, (client,))
        timer.name, timer.daemon = "tb-dlms-session-limits-watch", True
        timer.start()

    def check(self, client) -> None:
        if getattr(client, "rate_limits_received", True) or getattr(client, "stopped", False):
            return
        with self.lock:
            if self.warned:
                return
            self.warned = True
        host = getattr(getattr(client, "_client", None), "_host", "?")
        log.warning("The platform at %s has not answered the gateway's getSessionLimits request within %g s: "
                    "it does not behave like ThingsBoard (a plain MQTT broker, a wrong host or port?). "
                    "Meter readings are being BUFFERED in the gateway's storage and NOT SENT until it answers. "
                    "Check thingsboard.host/port with test_config.py.", host, ANSWER_WAIT_S)

    def answered(self) -> None:
        with self.lock:
            if not self.warned:
                return
            self.warned = False
        log.info("The platform answered the getSessionLimits request: buffered readings are being sent.")


def watch_session_limits(client_cls: Any = None) -> bool:
    """Wrap ``request_service_configuration`` / ``on_service_configuration`` of the gateway's MQTT client."""
    if client_cls is None:
        from tb_device_mqtt import TBDeviceMqttClient

        client_cls = TBDeviceMqttClient
    request = client_cls.request_service_configuration
    if getattr(request, _MARK, False):
        return False
    configure = client_cls.on_service_configuration
    watch = _Watch()

    def request_service_configuration(self, callback):
        request(self, callback)
        watch.arm(self)

    def on_service_configuration(self, *args, **kwargs):
        result = configure(self, *args, **kwargs)
        if self.rate_limits_received:
            watch.answered()
        return result

    setattr(request_service_configuration, _MARK, True)
    client_cls.request_service_configuration = request_service_configuration
    client_cls.on_service_configuration = on_service_configuration
    return True
