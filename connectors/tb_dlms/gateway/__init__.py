"""ThingsBoard IoT Gateway adapter: the connector, its meters, their RPCs."""
