"""Development and test tooling: a real Mosquitto broker, a fake ThingsBoard on the gateway MQTT API,
and a helper that runs the real ThingsBoard IoT Gateway as a subprocess with our connector.

Shared by the end-to-end tests (``tests/e2e``) and the demo (``start_gateway.sh --demo``).
Nothing here is imported by the connector itself.
"""
