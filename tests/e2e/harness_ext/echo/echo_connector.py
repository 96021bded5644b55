"""A trivial connector used only to test the e2e harness (broker, fake ThingsBoard, gateway process).

Loaded by the gateway by path (no package): one device "Echo Device" (type "echo") reporting a
counter every 0.2 s plus one attribute; device RPCs are echoed; connector RPC ``echo_ping`` answers.
"""
import threading
import time

from thingsboard_gateway.connectors.connector import Connector
from thingsboard_gateway.gateway.entities.converted_data import ConvertedData
from thingsboard_gateway.gateway.entities.datapoint_key import DatapointKey
from thingsboard_gateway.gateway.entities.telemetry_entry import TelemetryEntry


class EchoConnector(Connector):
    def __init__(self, gateway, config, connector_type):
        self._gateway = gateway
        self._config = config
        self._type = connector_type
        self.name = config.get("name", "Echo")
        self._id = config.get("id")
        self.statistics = {"MessagesReceived": 0, "MessagesSent": 0}
        self._stop = threading.Event()
        self._stopped = True
        self._thread = threading.Thread(target=self._run, name="echo connector", daemon=True)

    def open(self):
        self._stopped = False
        self._thread.start()

    def _run(self):
        counter = 0
        first = True
        while not self._stop.is_set():
            data = ConvertedData(device_name=self._config.get("deviceName", "Echo Device"), device_type="echo")
            data.add_to_telemetry(TelemetryEntry({DatapointKey("counter"): counter}, int(time.time() * 1000)))
            if first:
                data.add_to_attributes(DatapointKey("model"), "echo-1")
                first = False
            self._gateway.send_to_storage(self.name, self._id, data)
            self.statistics["MessagesSent"] += 1
            counter += 1
            self._stop.wait(0.2)

    def close(self):
        self._stop.set()
        self._stopped = True

    def get_id(self):
        return self._id

    def get_name(self):
        return self.name

    def get_type(self):
        return self._type

    def get_config(self):
        return self._config

    def is_connected(self):
        return not self._stopped

    def is_stopped(self):
        return self._stopped

    def on_attributes_update(self, content):
        pass

    def server_side_rpc_handler(self, content):
        self.statistics["MessagesReceived"] += 1
        if "device" in content and isinstance(content.get("data"), dict):
            data = content["data"]
            self._gateway.send_rpc_reply(device=content["device"], req_id=data["id"],
                                         content={"result": {"echo": data.get("params"), "method": data["method"]}})
            return None
        return {"pong": content.get("params"), "method": content.get("method")}
