"""The harness itself against the real gateway, with a trivial test connector (harness_ext/echo).

Proves: the gateway starts via tb_dlms.launcher with an extra loader path, the fake ThingsBoard
answers getSessionLimits, device connect/telemetry/attributes arrive, device and connector RPCs
round-trip, the version check makes no outside call, SIGINT stops the gateway cleanly.
"""
from __future__ import annotations

import socket
import threading

import pytest

from tb_dlms.devtools.gateway_process import GatewayProcess

from e2e_support import HARNESS_EXTENSIONS, stop_gateway

ECHO_CONNECTOR = [{"type": "echo", "name": "Echo", "configuration": "echo.json", "class": "EchoConnector"}]


class ConnectRecorder:
    """A loopback TCP listener standing in for an HTTP(S) proxy: records whether anyone connected."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connected = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self.connected.set()
        conn.close()

    def close(self) -> None:
        self.sock.close()

    def env(self) -> dict:
        url = f"http://127.0.0.1:{self.port}"
        return {"HTTPS_PROXY": url, "HTTP_PROXY": url, "https_proxy": url, "http_proxy": url,
                "NO_PROXY": "", "no_proxy": ""}


def echo_gateway(broker, tmp_path_factory, **kwargs) -> GatewayProcess:
    return GatewayProcess(broker.port, connectors=ECHO_CONNECTOR, extra_files={"echo.json": {}},
                          extra_extensions=[HARNESS_EXTENSIONS], workdir=tmp_path_factory.mktemp("gateway"),
                          **kwargs)


@pytest.fixture(scope="module")
def proxy():
    recorder = ConnectRecorder()
    yield recorder
    recorder.close()


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, proxy, tmp_path_factory):
    gw = echo_gateway(broker, tmp_path_factory, extra_env=proxy.env()).start()
    yield gw
    stop_gateway(gw)


def test_gateway_requests_session_limits(gateway, fake_tb):
    fake_tb.wait_session_limits_requested(30)
    gateway.assert_running()


def test_device_connect_with_type(gateway, fake_tb):
    connect = fake_tb.wait_connect("Echo Device", 30)
    assert connect["type"] == "echo"


def test_telemetry_with_timestamps(gateway, fake_tb):
    points = fake_tb.wait_telemetry("Echo Device", ["counter"], 30)
    point = points[-1]
    assert isinstance(point.values["counter"], int)
    assert point.ts is not None and abs(point.ts / 1000 - point.received) < 10


def test_attributes(gateway, fake_tb):
    attrs = fake_tb.wait_attributes("Echo Device", ["model"], 30)
    assert attrs["model"] == "echo-1"


def test_device_rpc_round_trip(gateway, fake_tb):
    fake_tb.wait_connect("Echo Device", 30)
    reply = fake_tb.device_rpc("Echo Device", "hello", {"x": 1}, timeout=15)
    assert reply == {"result": {"echo": {"x": 1}, "method": "hello"}}


def test_connector_rpc_round_trip(gateway, fake_tb):
    fake_tb.wait_session_limits_requested(30)
    assert fake_tb.connector_rpc("echo_ping", {"y": 2}, timeout=15) == {"pong": {"y": 2}, "method": "echo_ping"}


def test_gateway_builtin_rpc(gateway, fake_tb):
    fake_tb.wait_session_limits_requested(30)
    assert fake_tb.connector_rpc("gateway_ping", {}, timeout=15) == {"code": 200, "resp": "pong"}


def test_no_version_check_on_start(gateway, fake_tb, proxy):
    # By the time an RPC has round-tripped, the gateway's updater thread (started in the service
    # constructor, before the MQTT connect) would have gone through the proxy; see the positive
    # control below, which shows this recorder does catch it.
    fake_tb.wait_session_limits_requested(30)
    fake_tb.connector_rpc("gateway_ping", {}, timeout=15)
    assert not proxy.connected.is_set(), "the gateway made an outside HTTP(S) call"
    assert "Gateway version check disabled" in gateway.output_tail(100_000)


def test_version_check_detector_positive_control(broker, tmp_path_factory):
    """With the check re-enabled, the POST to the update server goes through our fake proxy."""
    recorder = ConnectRecorder()
    env = {**recorder.env(), "TB_DLMS_ALLOW_UPDATE_CHECK": "1"}
    gw = echo_gateway(broker, tmp_path_factory, extra_env=env, with_dlms=False)
    try:
        gw.start()
        assert recorder.connected.wait(30), "no connection to the proxy: the detector would not notice calls"
    finally:
        gw.stop()
        recorder.close()


def test_logs_written_to_work_dir(gateway, fake_tb):
    fake_tb.wait_connect("Echo Device", 30)
    assert gateway.log_path("service").exists()
    assert "Gateway started" in gateway.log_text("service") or "Gateway core started" in gateway.log_text("service")
