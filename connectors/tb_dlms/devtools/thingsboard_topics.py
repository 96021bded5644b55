"""Run the gateway (``tb_dlms.launcher``) with ThingsBoard's topic semantics on a plain MQTT broker.

ThingsBoard never sends a device's own client attributes back to it: what the gateway publishes on
``v1/devices/me/attributes`` is stored as client attributes, and only shared-attribute updates
arrive on that topic. A plain broker delivers the gateway's own publications back to it, and with
``remoteConfiguration: true`` the gateway takes its echoed configuration for a new one from
ThingsBoard and reloads its connectors in a loop. Subscribing to that one topic with MQTT v5
``noLocal`` gives the ThingsBoard behaviour; the gateway itself runs unchanged.

    python -m tb_dlms.devtools.thingsboard_topics --config-dir DIR --work-dir DIR

For tests and the demo only (GatewayProcess(..., thingsboard_topics=True)); ThingsBoard needs none of it.
"""
from __future__ import annotations

import sys

ATTRIBUTES_TOPIC = "v1/devices/me/attributes"


def no_local_attribute_subscription() -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.subscribeoptions import SubscribeOptions

    original = mqtt.Client.subscribe
    if getattr(original, "_tb_dlms_no_local", False):
        return

    def subscribe(self, topic, qos=0, options=None, properties=None):
        if topic == ATTRIBUTES_TOPIC and options is None and self._protocol == mqtt.MQTTv5:
            return original(self, topic, options=SubscribeOptions(qos=qos, noLocal=True), properties=properties)
        return original(self, topic, qos, options, properties)

    setattr(subscribe, "_tb_dlms_no_local", True)  # noqa: B010 - a marker on a function object
    mqtt.Client.subscribe = subscribe  # type: ignore[method-assign]  # the patch itself


def main(argv: list[str] | None = None) -> int:
    no_local_attribute_subscription()
    from ..launcher.run_gateway import main as launcher_main

    return launcher_main(argv)


if __name__ == "__main__":
    sys.exit(main())
