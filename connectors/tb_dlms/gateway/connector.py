"""The gateway's view of DLMS: a ``Connector`` that polls meters and answers RPCs.

The gateway constructs it, calls ``open()`` once and ``close()`` until ``is_stopped()``; it hands
over RPCs and attribute updates from its own threads. All meter I/O happens on one polling thread
running an asyncio loop, one task per meter; the gateway's threads only hand work to that loop
and wait a bounded time, so a meter can never stall the gateway.
"""
from __future__ import annotations

import asyncio
import json
import threading
from random import choice
from string import ascii_lowercase
from typing import Any

from thingsboard_gateway.connectors.connector import Connector
from thingsboard_gateway.gateway.constants import STATISTIC_MESSAGE_RECEIVED_PARAMETER, \
    STATISTIC_MESSAGE_SENT_PARAMETER
from thingsboard_gateway.gateway.entities.converted_data import ConvertedData
from thingsboard_gateway.gateway.statistics.statistics_service import StatisticsService
from thingsboard_gateway.tb_utility.tb_logger import init_logger

from ..config.schema import ConnectorConfig, DeviceConfig, load_handed_over
from ..protocol.limits import ConnectionLimits
from ..protocol.listener import InboundHub
from ..resilience.watchdog import Heartbeat, LoopWatchdog
from . import commands, commissioning, inbound, payload_limit, rpc
from .collector import MeterDataCollector
from .cursors import CursorStore, cursor_file
from .device import DLMSDevice
from .loop_thread import LoopNotRunning, LoopThread
from .sessions import SessionFactory, meter_session_factory
from .storage_watch import StorageWatch

#: close() waits this long for the polling thread; the gateway calls close() again if needed.
STOP_TIMEOUT_S = 3.0
#: Sessions get this long, together, to release their associations at stop.
SESSIONS_CLOSE_BOUND_S = 1.5
#: A meter's disconnect waits this long at most for the gateway to take its last health message,
#: then this margin more: the gateway's conversion thread connects a device on data it has just taken.
DISCONNECT_WAIT_S = 5.0
DISCONNECT_MARGIN_S = 0.5
#: A connector RPC blocks the gateway's MQTT thread while it waits: keep it short.
CONNECTOR_RPC_TIMEOUT_S = 5.0
#: The polling thread of the connector a reload replaces gets this long to end before the new one
#: starts (its own close() already waited STOP_TIMEOUT_S): two loops must never poll the same meters.
PREVIOUS_LOOP_WAIT_S = 10.0
#: Connector per name, so that a reload (remote configuration) waits for the replaced one's thread.
_LOOPS: dict[str, "DLMSConnector"] = {}
_LOOPS_LOCK = threading.Lock()


def remote_configuration_on(gateway) -> bool:
    """``thingsboard.remoteConfiguration`` of the running gateway (secrets must then be ``${VAR}``)."""
    config = getattr(gateway, "config", None)
    thingsboard = config.get("thingsboard") if isinstance(config, dict) else None
    return isinstance(thingsboard, dict) and thingsboard.get("remoteConfiguration") is True


def gateway_entry(gateway, config: Any) -> tuple[str | None, str | None]:
    """(connector file, connector name) that ``config`` came from, for messages.

    The gateway passes neither to the constructor when it could not parse the file (the config is
    then the raw text); its table of loaded connector configurations (``connectors_configs``:
    type -> [{"name", "config": {file name: content}}]) holds both.
    """
    try:
        for entries in (getattr(gateway, "connectors_configs", None) or {}).values():
            for entry in entries:
                for file_name, content in (entry.get("config") or {}).items():
                    if content == config:
                        name = entry.get("name")
                        return str(file_name), name if isinstance(name, str) else None
    except Exception:  # noqa: BLE001 - names for messages only; an unknown gateway layout is no error
        pass
    return None, None


def _refusal(status) -> str | None:
    """3.8.5 answers Status.SUCCESS, FAILURE or FORBIDDEN_DEVICE (None from older gateways)."""
    name = getattr(status, "name", "SUCCESS")
    return None if name == "SUCCESS" else f"send_to_storage answered {name}"


class DLMSConnector(Connector):
    def __init__(self, gateway, config: dict, connector_type: str,
                 session_factory: SessionFactory | None = None) -> None:
        self.statistics = {STATISTIC_MESSAGE_RECEIVED_PARAMETER: 0, STATISTIC_MESSAGE_SENT_PARAMETER: 0}
        self.__gateway = gateway
        self.__config = config
        self._connector_type = connector_type
        #: The gateway hands over the file's raw text when it could not parse it (config/gateway_json.py).
        given = config if isinstance(config, dict) else {}
        self.config_file, entry_name = gateway_entry(gateway, config)
        self.dlms_config: ConnectorConfig
        self.dlms_config, self.config_errors = load_handed_over(
            config, self.config_file, secrets_from_env=remote_configuration_on(gateway))
        given_name = given.get("name")
        self.name: str = given_name if isinstance(given_name, str) else entry_name or \
            "DLMS Connector " + "".join(choice(ascii_lowercase) for _ in range(5))
        self.__id = given.get("id")
        self._log = init_logger(gateway, self.name, self.dlms_config.log_level,
                                enable_remote_logging=self.dlms_config.enable_remote_logging,
                                is_connector_logger=True)
        for error in map(str, self.config_errors):
            named = self.config_file is None or error.startswith(self.config_file)
            self._log.error("Configuration: %s", error if named else f"{self.config_file}: {error}")
        self._session_factory = session_factory
        #: Bumped when a stuck loop is replaced: data from the old loop's devices is then dropped.
        self._generation = 0
        self.loop_restarts = 0
        self.storage = StorageWatch()
        self.cursors = CursorStore(cursor_file(gateway, self.dlms_config.data_dir, self.name), self._log,
                                   storage_failed_at=self.storage.failed_since)
        self._devices: dict[str, DLMSDevice] = self._make_devices()
        self._heartbeat = Heartbeat.for_stall(self.dlms_config.loop_stall_s)
        self._loop_thread = LoopThread(f"{self.name} polling", self._poll_all, self._log)
        self._watchdog = LoopWatchdog(self.name, lambda: self._heartbeat, self.dlms_config.loop_stall_s,
                                      self._restart_loop, self._log)
        self._restart_lock = threading.Lock()
        self._presence_tasks: set[asyncio.Task] = set()
        self._stopped = False
        self._close_lock = threading.Lock()
        self._log.info("%s: %d meter(s) configured, %d configuration error(s)",
                       self.name, len(self._devices), len(self.config_errors))

    # -- lifecycle ----------------------------------------------------------------------------

    def _make_devices(self) -> dict[str, DLMSDevice]:
        # One factory for all meters: real sessions then share one link pool (HDLC serial servers).
        # A new one per loop: links and locks belong to the loop that made them.
        #: Listeners and the links of meters that call in; like the links, they belong to one loop.
        self._hub = InboundHub(self.dlms_config.listeners)
        c = self.dlms_config
        #: The connections we dial to polled meters, capped (maxConnections, maxNewConnectionsPerS).
        self._dial_limits = ConnectionLimits(c.max_connections, c.max_new_connections_per_s) \
            if c.max_connections or c.max_new_connections_per_s else None
        factory = self._session_factory or meter_session_factory(self._hub, self._dial_limits)
        #: Probes of meters outside the configuration use it too: their turns on a shared bus.
        self._factory = factory
        generation = self._generation

        def publish(data: ConvertedData) -> None:
            if generation == self._generation:
                self._publish(data)

        # Each meter's coordinator and listeners are made here, at once: nothing is wired in later.
        return {d.name: DLMSDevice(d, factory, publish, self._log, presence=self._presence,
                                   collector=self._collector(d, generation))
                for d in self.dlms_config.devices}

    def _collector(self, config: DeviceConfig, generation: int) -> MeterDataCollector:
        """Profiles, logs and clock of one meter; rows from a replaced loop are never delivered."""
        def deliver(data: ConvertedData) -> bool:
            return generation == self._generation and self._deliver(data)

        return MeterDataCollector(config.name, config.type, config.meter_data, self.cursors,
                                  deliver, self._gateway_running, self._log, config.poll_timeout_s,
                                  self._queue_drained)

    def open(self) -> None:
        self._stopped = False
        self._heartbeat = Heartbeat.for_stall(self.dlms_config.loop_stall_s)
        with _LOOPS_LOCK:
            previous = _LOOPS.get(self.name)
            _LOOPS[self.name] = self
        if previous is not None and previous is not self:
            # Only a connector the gateway has closed is waited for: one still open is not ours to stop.
            if not previous.is_stopped():
                self._log.warning("%s: another connector of this name is running in this process", self.name)
            elif not previous._loop_thread.stop(PREVIOUS_LOOP_WAIT_S):
                self._log.error("%s: the polling thread of the configuration replaced is still busy after %g s",
                                self.name, PREVIOUS_LOOP_WAIT_S)
        self.storage.attach()
        self._loop_thread.start()
        self._watchdog.start()

    def _restart_loop(self, age: float) -> None:
        """Called by the watchdog thread: leave the stuck loop behind and poll on a fresh one."""
        with self._restart_lock:
            if self._stopped:
                return
            self.loop_restarts += 1
            self._log.error("%s: polling loop has not run for %.0f s (stuck); restarting it with %d meter(s)"
                            " (restart %d)", self.name, age, len(self._devices), self.loop_restarts)
            old = self._loop_thread
            old.stop(0)  # it ends by itself if it ever gets unstuck
            self._generation += 1
            self._devices = self._make_devices()
            self._heartbeat = Heartbeat.for_stall(self.dlms_config.loop_stall_s)
            self._loop_thread = LoopThread(f"{self.name} polling", self._poll_all, self._log)
            self._loop_thread.start()

    async def _poll_all(self, stopping: asyncio.Event) -> None:
        devices = self._devices
        hub = self._hub
        inbound.wire(hub, devices.values(), self._log)
        await hub.start()
        tasks = [asyncio.create_task(d.run(), name=f"meter {d.name}") for d in devices.values()]
        tasks.append(asyncio.create_task(self._heartbeat.run(), name="heartbeat"))
        try:
            await stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            closing = [asyncio.create_task(d.close()) for d in devices.values()]
            if closing:
                _, late = await asyncio.wait(closing, timeout=SESSIONS_CLOSE_BOUND_S)
                for task in late:
                    task.cancel()
                if late:
                    self._log.warning("%s: %d session(s) did not close in time", self.name, len(late))
            await hub.stop()

    def close(self) -> None:
        with self._close_lock:
            first = not self._stopped
            self._stopped = True
        if first:
            self._log.info("Stopping %s...", self.get_name())
        self._watchdog.stop()
        with self._restart_lock:
            pass  # a restart in progress finishes first, so the loop stopped below is the current one
        stopped = self._loop_thread.stop(STOP_TIMEOUT_S)
        self.storage.detach()
        if first:
            if stopped:
                self._log.info("%s has been stopped", self.get_name())
            else:
                self._log.warning("%s: polling thread still busy after %g s; left to finish as a daemon",
                                  self.get_name(), STOP_TIMEOUT_S)
            stop_logger = getattr(self._log, "stop", None)
            if callable(stop_logger):
                stop_logger()

    def is_stopped(self) -> bool:
        return self._stopped

    def get_name(self) -> str:
        return self.name

    def get_id(self):
        return self.__id

    def get_type(self) -> str:
        return self._connector_type

    def get_config(self) -> dict:
        return self.__config

    def is_connected(self) -> bool:
        return not self._stopped and self._loop_thread.running and any(d.connected for d in self._devices.values())

    def owns_device(self, name: str) -> bool:
        """One of this connector's meters (asked by the launcher's RPC routing for a meter that is
        disconnected at ThingsBoard, launcher/rpc_routing.py)."""
        return name in self._devices

    @property
    def devices(self) -> dict[str, DLMSDevice]:
        return self._devices

    # -- data ---------------------------------------------------------------------------------

    def _within_limit(self, data: ConvertedData) -> ConvertedData:
        """Without the values ThingsBoard would refuse as too large (each named on its meter)."""
        data, dropped = payload_limit.within_limit(data, payload_limit.gateway_limit(self.__gateway))
        device = self._devices.get(data.device_name)
        for oversized in dropped:
            if device is not None:
                device.note_oversized(oversized)
            else:
                self._log.error("%s", oversized.describe(data.device_name))
        return data

    def _publish(self, data: ConvertedData) -> None:
        """Hand one meter's live data to the gateway (called on the polling loop)."""
        self._hand_over(data, "data for")

    def _deliver(self, data: ConvertedData) -> bool:
        """Hand over rows whose cursor depends on it: True only when the gateway queued them and
        its storage is not refusing data (the rows are then read again, never skipped)."""
        if not self._gateway_running():
            return False  # a stopping gateway no longer moves its queue into storage
        return self._hand_over(data, "rows of")

    def _hand_over(self, data: ConvertedData, what: str) -> bool:
        """The one way data leaves the connector: within ThingsBoard's payload limit, and counted as
        sent only when ``send_to_storage`` took it (3.8.5 answers FAILURE or FORBIDDEN_DEVICE too)."""
        self.statistics[STATISTIC_MESSAGE_RECEIVED_PARAMETER] += 1
        data = self._within_limit(data)
        if payload_limit.is_empty(data):
            return True  # nothing that ThingsBoard would take: rows are not read again for it
        try:
            StatisticsService.count_connector_message(self.get_name(), stat_parameter_name="storageMsgPushed")
            status = self.__gateway.send_to_storage(self.get_name(), self.get_id(), data)
        except Exception as exc:  # noqa: BLE001 - a storage hiccup must not end a meter's schedule
            self._log.error("%s: %s %s not stored: %s", self.name, what, data.device_name, exc)
            return self._storage_answer(data.device_name, f"send_to_storage failed: {exc}")
        return self._storage_answer(data.device_name, _refusal(status))

    def _storage_answer(self, device_name: str, refusal: str | None) -> bool:
        """Count the hand-over as sent only if the storage takes data; tell the meter otherwise."""
        if refusal is None:
            self.storage.handed_over()
        problem = refusal or self.storage.problem()
        if problem is None:
            self.statistics[STATISTIC_MESSAGE_SENT_PARAMETER] += 1
        device = self._devices.get(device_name)
        if device is not None:
            device.note_storage(problem)
        return problem is None

    def _presence(self, device: DLMSDevice, present: bool) -> None:
        """Device activity at ThingsBoard follows the meter (as the Modbus connector's add/del_device).

        Back: nothing to do, its data has connected it. Gone: disconnect it once the gateway has
        taken the health that says why (that data would otherwise connect it again), unless it came
        back meanwhile. Called on the polling loop.
        """
        if not present:
            task = asyncio.get_running_loop().create_task(self._disconnect_when_sent(device),
                                                          name=f"disconnect {device.name}")
            self._presence_tasks.add(task)  # the loop keeps only weak references to its tasks
            task.add_done_callback(self._presence_tasks.discard)

    async def _disconnect_when_sent(self, device: DLMSDevice) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DISCONNECT_WAIT_S
        while not self._queue_drained() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        # The gateway connects a device on the data it has just taken from the queue: leave it that moment.
        await asyncio.sleep(DISCONNECT_MARGIN_S)
        if device.on_platform or self._stopped or device.name not in self._connected_at_gateway():
            return
        try:
            # del_device, not del_device_async: 3.8.5 starts the thread behind the latter only with gRPC.
            # In an executor: it writes connected_devices.json and publishes, off the polling loop.
            await loop.run_in_executor(None, self.__gateway.del_device, device.name)
            self._log.debug("%s: %s disconnected at ThingsBoard", self.name, device.name)
        except Exception as exc:  # noqa: BLE001 - activity is best effort; polling goes on
            self._log.warning("%s: %s not disconnected at ThingsBoard: %s", self.name, device.name, exc)

    def _connected_at_gateway(self) -> Any:
        try:
            return self.__gateway.get_devices()
        except Exception:  # noqa: BLE001 - an older or fake gateway: assume it is connected
            return {name: None for name in self._devices}

    def _gateway_running(self) -> bool:
        return getattr(self.__gateway, "stopped", False) is not True

    def _queue_drained(self) -> bool:
        """The gateway took everything we queued into its storage (asked at stop, see cursors.py)."""
        queue = getattr(self.__gateway, "get_converted_data_queue", None)
        try:
            return callable(queue) and queue().empty() is True
        except Exception:  # noqa: BLE001 - unknown: assume not, rows are then sent again after restart
            return False

    def on_attributes_update(self, content: dict) -> None:
        """Shared attributes mapped in a device's ``attributeUpdates`` become meter writes or methods."""
        name = content.get("device") if isinstance(content, dict) else None
        device = self._devices.get(name) if isinstance(name, str) else None
        data = content.get("data") if isinstance(content, dict) else None
        mapped_keys = {m.key for m in device.config.meter_data.attribute_updates} if device is not None else set()
        mapped = {k: v for k, v in data.items() if k in mapped_keys} if isinstance(data, dict) else {}
        if device is None or not mapped:
            self._log.debug("%s: attribute update ignored (no writable mapping): %s", self.name,
                            json.dumps(content, default=str)[:500])
            return
        work = commands.apply_attribute_updates(device, mapped, self._log)
        try:
            self._loop_thread.submit(work)
        except LoopNotRunning:
            work.close()
            self._log.error("%s: attribute update for %s not applied: %s is not running", self.name,
                            device.name, self.name)

    # -- RPC ----------------------------------------------------------------------------------

    def server_side_rpc_handler(self, content: dict) -> Any:
        if not isinstance(content, dict):
            return {"error": "RPC request must be a JSON object"}
        if content.get("device") is not None:
            self._device_rpc(content)
            return None
        return self._connector_rpc(content)

    def _device_rpc(self, content: dict) -> None:
        """Answered through ``send_rpc_reply`` once the loop is done; the gateway's thread moves on."""
        device = str(content.get("device"))  # on_rpc_request() checked it is there
        data = content.get("data")
        # Known before parsing, so that a malformed request is still answered under its own id.
        req_id = data.get("id", content.get("id")) if isinstance(data, dict) else content.get("id")
        try:
            request = rpc.parse_device_request(content)
            if request is None:  # not a request: e.g. our own reply echoed back by a plain broker
                return
            req_id = request.req_id
            self._log.debug("%s: RPC %s for %s (id %s)", self.name, request.method, device, req_id)
            work = rpc.prepare_device_call(request, self._devices)
            future = self._loop_thread.submit(work())
        except rpc.RpcError as exc:
            self._reply(device, req_id, {"error": str(exc)})
            return
        except LoopNotRunning:
            self._reply(device, req_id, {"error": f"{self.name} is not running"})
            return
        except Exception as exc:  # noqa: BLE001 - never let an RPC escape into the gateway
            self._log.exception("%s: RPC for %s failed", self.name, device)
            self._reply(device, req_id, {"error": f"internal error: {exc}"})
            return

        def answer(done) -> None:
            if done.cancelled():
                reply = {"error": f"{self.name} stopped before {request.method} finished"}
            elif done.exception() is not None:
                reply = {"error": f"internal error: {done.exception()}"}
            else:
                reply = done.result()
            self._reply(device, req_id, reply)

        future.add_done_callback(answer)

    def _connector_rpc(self, content: dict) -> dict:
        try:
            request = rpc.parse_connector_request(content, self._connector_type)
            self._log.debug("%s: connector RPC %s (id %s)", self.name, request.method, request.req_id)
            if request.method in commissioning.METHODS:
                return self._commissioning_rpc(request)
            work = rpc.prepare_connector_call(request, self._devices, self._connector_type)
            result = self._loop_thread.call(work(), CONNECTOR_RPC_TIMEOUT_S)
            if request.method == "getStats" and isinstance(result, dict):
                # Live polling threads of this connector in the process: 1, also right after a reload.
                if self._hub.listeners:
                    result["listeners"] = self._hub.report()
                if self._dial_limits is not None:
                    result["dialledConnections"] = self._dial_limits.report()
                result["pollingThreads"] = sum(1 for t in threading.enumerate() if t.is_alive()
                                               and t.name == f"{self.name} polling")
            return result
        except (rpc.RpcError, commissioning.CommissioningError) as exc:
            return {"error": str(exc)}
        except LoopNotRunning:
            return {"error": f"{self.name} is not running"}
        except TimeoutError:
            return {"error": f"{content.get('method')} did not finish within {CONNECTOR_RPC_TIMEOUT_S:g} s"}
        except Exception as exc:  # noqa: BLE001 - never let an RPC escape into the gateway
            self._log.exception("%s: connector RPC failed", self.name)
            return {"error": f"internal error: {exc}"}

    def _commissioning_rpc(self, request: rpc.RpcRequest) -> dict:
        """``dlms_probe`` / ``dlms_discover``: the gateway publishes what this returns, so wait for it
        (bounded by the request's ``timeoutMs``; the work answers before that)."""
        params = rpc.parse_params(request.params)
        wait = commissioning.timeout_s(params)
        work = commissioning.run(request.method, params, self._devices, self._factory)
        return self._loop_thread.call(work, wait + CONNECTOR_RPC_TIMEOUT_S)

    def _reply(self, device: str, req_id: Any, content: dict) -> None:
        self.statistics[STATISTIC_MESSAGE_SENT_PARAMETER] += 1
        try:
            self.__gateway.send_rpc_reply(device, req_id, content)
        except Exception:  # noqa: BLE001
            self._log.exception("%s: RPC reply to %s not sent", self.name, device)
