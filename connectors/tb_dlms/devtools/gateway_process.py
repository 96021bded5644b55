"""Run the real ThingsBoard IoT Gateway as a subprocess against a test broker.

    gw = GatewayProcess(broker_port, connector_config=dict_or_path)   # writes a config dir in a temp dir
    gw.start()                    # python -m tb_dlms.launcher --config-dir ... --work-dir ...
    ... gw.log_text("service") ...
    gw.stop()                     # SIGINT (clean device disconnects), bounded wait, then kill

The gateway is started through :mod:`tb_dlms.launcher` (loader path extended with our extensions
directory, version check disabled), with cwd = a temp work dir so ``logs/`` and the storage land there.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

CONNECTOR_FILE = "dlms_connector.json"
DEFAULT_TOKEN = "tb-dlms-test-token"

#: Environment variables the gateway reads as overrides of the ``thingsboard`` section (see
#: TBUtility.get_service_environmental_variables); stripped so a developer's shell cannot redirect tests.
GATEWAY_ENV_OVERRIDES = (
    "host", "port", "type", "accessToken", "caCert", "privateKey", "cert", "clientId", "username", "password",
    "proxy_host", "proxy_port",
)


def gateway_main_config(host: str = "127.0.0.1", port: int = 1883, *, token: str = DEFAULT_TOKEN,
                        storage: str = "file", data_dir: str | os.PathLike = "./data/",
                        connectors: list[dict] | None = None, with_dlms: bool = True,
                        connector_file: str = CONNECTOR_FILE) -> dict:
    """A tb_gateway.json for a local broker: no remote configuration, no remote shell, no statistics."""
    data_dir = str(data_dir)
    if not data_dir.endswith(os.sep):
        data_dir += os.sep
    if storage == "sqlite":
        storage_cfg = {"type": "sqlite", "data_file_path": data_dir, "messages_ttl_check_in_hours": 1,
                       "messages_ttl_in_days": 7, "max_read_records_count": 1000}
    elif storage == "file":
        storage_cfg = {"type": "file", "data_folder_path": data_dir, "max_file_count": 2000,
                       "max_read_records_count": 1000, "max_records_per_file": 10000}
    elif storage == "memory":
        storage_cfg = {"type": "memory", "read_records_count": 1000, "max_records_count": 100000}
    else:
        raise ValueError(f"unknown storage type {storage!r}")
    if connectors is None:
        connectors = [{"type": "dlms", "name": "DLMS Connector", "configuration": connector_file,
                       "class": "DLMSConnector"}] if with_dlms else []
    return {
        "thingsboard": {
            "host": host,
            "port": port,
            "remoteShell": False,
            "remoteConfiguration": False,
            "latencyDebugMode": False,
            "statistics": {"enable": False, "enableCustom": False, "statsSendPeriodInSeconds": 3600,
                           "customStatsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": False},
            "maxPayloadSizeBytes": 65536,
            "minPackSendDelayMS": 50,
            "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 86400,
            "handleDeviceRenaming": True,
            "security": {"type": "accessToken", "accessToken": token},
            "qos": 1,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
        },
        "storage": storage_cfg,
        "grpc": {"enabled": False},
        "connectors": connectors,
    }


def write_config_dir(config_dir: str | os.PathLike, main_config: dict,
                     connector_config: dict | str | os.PathLike | None = None,
                     connector_file: str = CONNECTOR_FILE) -> Path:
    """Write tb_gateway.json (+ the connector JSON, + the gateway's default logs.json) into ``config_dir``."""
    config_dir = Path(config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "tb_gateway.json").write_text(json.dumps(main_config, indent=2))
    if connector_config is not None:
        target = config_dir / connector_file
        if isinstance(connector_config, dict):
            target.write_text(json.dumps(connector_config, indent=2))
        else:
            shutil.copyfile(connector_config, target)
    from ..launcher.config import ensure_logs_config

    ensure_logs_config(config_dir)
    return config_dir


def set_log_level(config_dir: str | os.PathLike, level: str = "DEBUG", loggers: tuple = ("connector",)) -> None:
    path = Path(config_dir) / "logs.json"
    data = json.loads(path.read_text())
    for name in loggers:
        if name in data.get("loggers", {}):
            data["loggers"][name]["level"] = level
    path.write_text(json.dumps(data, indent=2))


class GatewayProcess:
    def __init__(self, broker_port: int, connector_config: dict | str | os.PathLike | None = None, *,
                 broker_host: str = "127.0.0.1", token: str = DEFAULT_TOKEN, storage: str = "file",
                 workdir: str | os.PathLike | None = None, with_dlms: bool | None = None,
                 main_config_overrides: dict | None = None, python: str | None = None,
                 connectors: list[dict] | None = None, extra_files: dict[str, dict] | None = None,
                 extra_extensions: Sequence[str | os.PathLike[str]] = (), extra_env: dict[str, str] | None = None,
                 thingsboard_topics: bool = False) -> None:
        self._own_dir = workdir is None
        #: Run through devtools/thingsboard_topics.py: the broker then no longer echoes the gateway's
        #: own client attributes back to it, as ThingsBoard does not (needed for remoteConfiguration).
        self.module = "tb_dlms.devtools.thingsboard_topics" if thingsboard_topics else "tb_dlms.launcher"
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="tb-dlms-gateway-"))
        self.config_dir = self.workdir / "config"
        self.logs_dir = self.workdir / "logs"
        self.data_dir = self.workdir / "data"
        self.output_path = self.workdir / "gateway.out"
        self.python = python or sys.executable
        if with_dlms is None:
            with_dlms = connector_config is not None
        self.main_config = gateway_main_config(broker_host, broker_port, token=token, storage=storage,
                                               data_dir=self.data_dir, with_dlms=with_dlms,
                                               connectors=connectors)
        self.extra_extensions = [str(Path(p).resolve()) for p in extra_extensions]
        self.extra_env = dict(extra_env or {})
        for section, values in (main_config_overrides or {}).items():
            if isinstance(values, dict) and isinstance(self.main_config.get(section), dict):
                self.main_config[section].update(copy.deepcopy(values))
            else:
                self.main_config[section] = copy.deepcopy(values)
        write_config_dir(self.config_dir, self.main_config, connector_config)
        for name, content in (extra_files or {}).items():
            (self.config_dir / name).write_text(json.dumps(content, indent=2))
        self.proc: subprocess.Popen | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items()
               if k not in GATEWAY_ENV_OVERRIDES and not k.startswith("TB_GW_") and k.lower() != "mqtt_proxy"}
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("TB_DLMS_ALLOW_UPDATE_CHECK", None)
        if self.extra_extensions:
            env["TB_DLMS_EXTRA_EXTENSIONS"] = os.pathsep.join(self.extra_extensions)
        else:
            env.pop("TB_DLMS_EXTRA_EXTENSIONS", None)
        env.update(self.extra_env)
        return env

    def start(self) -> "GatewayProcess":
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.output_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.python, "-m", self.module, "--config-dir", str(self.config_dir),
                 "--work-dir", str(self.workdir)],
                cwd=self.workdir, env=self.env(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            out.close()
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGINT (the gateway disconnects its devices and closes connectors), then SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        return proc.returncode

    def close(self) -> None:
        self.stop()
        if self._own_dir and not os.environ.get("TB_DLMS_KEEP_TMP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __enter__(self) -> "GatewayProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- logs --------------------------------------------------------------------------------
    def log_path(self, name: str = "service") -> Path:
        """``logs/<name>.log`` (service, connector, storage, tb_connection, ...)."""
        return self.logs_dir / f"{name}.log"

    def log_files(self) -> list[Path]:
        return sorted(self.logs_dir.glob("*.log")) if self.logs_dir.exists() else []

    def log_text(self, name: str | None = None) -> str:
        """One log file, or (``None``) the console output plus every log file."""
        paths = [self.log_path(name)] if name else [self.output_path, *self.log_files()]
        chunks = []
        for path in paths:
            try:
                chunks.append(path.read_text(errors="replace"))
            except OSError:
                pass
        return "\n".join(chunks)

    def output_tail(self, chars: int = 4000) -> str:
        try:
            return self.output_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    @property
    def runtime_dir(self) -> Path:
        """The directory the launcher builds for the gateway (launcher/runtime_dir.py): what it runs on."""
        from ..launcher.runtime_dir import NAME

        return self.workdir / NAME

    def connector_config(self) -> Any:
        """The connector file the gateway runs on (its copy in the work dir; remote changes land there)."""
        for path in (self.runtime_dir / CONNECTOR_FILE, self.config_dir / CONNECTOR_FILE):
            if path.exists():
                return json.loads(path.read_text())
        return None

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def assert_running(self) -> None:
        if not self.running:
            code = None if self.proc is None else self.proc.returncode
            raise AssertionError(f"gateway exited (code {code}); output tail:\n{self.output_tail()}")


def wait_until(predicate, timeout: float, what: str = "condition", interval: float = 0.05):
    """Bounded polling for conditions that have no event to wait on (files, process state)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)
