"""The demo behind ``start_gateway.sh --demo``: everything local, nothing to configure.

Starts, in a temp dir:
1. a Mosquitto broker on a free loopback port (:mod:`tb_dlms.devtools.mosquitto`);
2. simulated meters matching the connector config (default ``config/dlms_connector.json``) on free
   ports (``python -m tb_dlms.simulator --config ...``; ports rewritten by :mod:`tb_dlms.devtools.meters`);
3. the real ThingsBoard IoT Gateway with the DLMS connector (:mod:`tb_dlms.devtools.gateway_process`);
4. a fake ThingsBoard showing a live table of what the gateway sends (one row per meter:
   readings with units and health, :mod:`tb_dlms.devtools.live_table`).

Runs until Ctrl-C (or ``--duration N`` seconds), then stops everything in reverse order. Exit code 0
when at least one meter reported telemetry, 1 otherwise, 2 on a setup error.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from rich.console import Console

from .fake_thingsboard import FakeThingsBoard
from .gateway_process import GatewayProcess, set_log_level
from .live_table import run_live_table
from .meters import simulator_specs, with_free_ports
from .mosquitto import MosquittoBroker


def _default_connector_config() -> Path:
    from ..launcher.config import repo_root

    root = repo_root()
    for candidate in ([root / "config" / "dlms_connector.json"] if root else []) + [Path("config/dlms_connector.json")]:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("no config/dlms_connector.json found; pass --connector-config")


class SimulatorProcess:
    """``python -m tb_dlms.simulator`` in a subprocess; ``start()`` returns after it printed READY."""

    def __init__(self, config_path: Path, log_path: Path, python: str = sys.executable) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.python = python
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.control: tuple[str, int] | None = None

    def start(self, timeout: float = 30.0) -> "SimulatorProcess":
        err = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.python, "-m", "tb_dlms.simulator", "--meters", "0", "--config", str(self.config_path),
             "--control-port", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True,
        )
        err.close()
        ready = threading.Event()

        def reader():
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                line = line.rstrip("\n")
                self.lines.append(line)
                if line.startswith("control "):
                    host, port = line.split()[1].rsplit(":", 1)
                    self.control = (host, int(port))
                if line == "READY":
                    ready.set()
            ready.set()  # EOF: process ended

        threading.Thread(target=reader, name="simulator stdout", daemon=True).start()
        if not ready.wait(timeout) or self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            self.stop()
            raise RuntimeError(f"simulator did not become ready:\n{tail}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _write_pidfile(broker, simulator, gateway) -> None:
    """For start_gateway.sh's exit trap: the pids to end if this process dies without cleaning up."""
    path = os.environ.get("TB_DLMS_DEMO_PIDFILE")
    if not path:
        return
    pids = [p.pid for p in (broker.proc, simulator.proc, gateway.proc) if p is not None]
    Path(path).write_text("".join(f"{pid}\n" for pid in pids))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="start_gateway.sh --demo", description=__doc__.splitlines()[0])
    parser.add_argument("--connector-config", help="connector JSON to demo (default config/dlms_connector.json)")
    parser.add_argument("--duration", type=float, default=None, help="stop after N seconds (non-interactive)")
    parser.add_argument("--interval", type=float, default=1.0, help="table refresh period (s)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs) after exit")
    parser.add_argument("--debug", action="store_true", help="connector log level DEBUG")
    args = parser.parse_args(argv)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    workdir = Path(tempfile.mkdtemp(prefix="tb-dlms-demo-"))
    broker = simulator = gateway = tb = None
    out = sys.stdout
    # One console for our lines and the table: on a terminal rich wraps our lines at its width (an
    # 80-column screen stays readable); piped, lines stay whole for logs and grep.
    console = Console(file=out, highlight=False, emoji=False, markup=False)

    def say(message: str) -> None:
        console.print(message, soft_wrap=not console.is_terminal)

    try:
        source = Path(args.connector_config) if args.connector_config else _default_connector_config()
        connector = with_free_ports(json.loads(source.read_text()))
        sim_config = workdir / "simulator.json"
        sim_config.write_text(json.dumps({"meters": simulator_specs(connector)}, indent=2))
        say(f"demo: working directory {workdir}")

        broker = MosquittoBroker(workdir=workdir / "mosquitto").start()
        say(f"demo: mosquitto on 127.0.0.1:{broker.port}")

        simulator = SimulatorProcess(sim_config, workdir / "simulator.log").start()
        for line in simulator.lines:
            if line != "READY":
                say("demo: simulator: " + " ".join(line.split()))

        tb = FakeThingsBoard(port=broker.port).start()
        gateway = GatewayProcess(broker.port, connector_config=connector, workdir=workdir / "gateway")
        if args.debug:
            set_log_level(gateway.config_dir, "DEBUG")
        gateway.start()
        say(f"demo: gateway pid {gateway.pid}, logs in {gateway.logs_dir}, console in {gateway.output_path}")
        say("demo: Ctrl-C to stop" if args.duration is None else f"demo: running for {args.duration:g}s")
        _write_pidfile(broker, simulator, gateway)
        run_live_table(tb, args.duration, args.interval, console=console)
        with tb._cond:
            with_data = sum(1 for d in tb.devices.values() if d.telemetry)
        if gateway.proc is not None and gateway.proc.poll() is not None:
            say(f"demo: the gateway exited early (code {gateway.proc.returncode}):\n{gateway.output_tail()}")
        return 0 if with_data else 1
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # setup failure: say what and where the logs are
        print(f"demo: failed: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not abort the cleanup
        say("demo: stopping...")
        for process in (gateway, tb, simulator, broker):
            try:
                if process is not None:
                    process.stop()
            except Exception as exc:
                print(f"demo: cleanup step failed: {exc}", file=sys.stderr)
        if args.keep or os.environ.get("TB_DLMS_KEEP_TMP"):
            say(f"demo: kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        say("demo: stopped")


if __name__ == "__main__":
    raise SystemExit(main())
