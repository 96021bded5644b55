"""Fault soak: many simulated meters, a share of them misbehaving, one connector that must not care.

Real ``MeterSession``s in a real ``DLMSConnector`` (in this process, with a stand-in gateway that
records what it is handed) against the simulator. A quarter of the meters (``--faulty``) get the
simulator's faults injected and cleared on a random schedule over the first part of the run; some
go dark (``blackhole``) long enough for their breaker to open. The last part is fault-free, so
every breaker must have closed again by the end. Reported:

- on time: share of the healthy meters' poll slots (each meter's own grid) whose telemetry carries
  a timestamp within ``--slack`` seconds of the slot (target >= 99 %)
- breakers opened / closed again, polls stuck past their deadline, polling-loop restarts
- memory: RSS at start and end (after warm-up), tracemalloc's top growth

    python bench/soak.py --meters 300 --minutes 10 --period 10
Writes bench/results/soak.json. ``tests/resilience/test_soak.py`` runs a small one in CI.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import sys
import tempfile
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

from tb_dlms.devtools.sim_devices import connection_for
from tb_dlms.gateway.connector import DLMSConnector
from tb_dlms.gateway.schedule import start_offset
from tb_dlms.resilience.breaker import BreakerState
from tb_dlms.simulator.faults import Fault
from tb_dlms.simulator.simulator import Simulator
from tb_dlms.simulator.spec import MeterSpec

HERE = Path(__file__).resolve().parent
REGISTERS = [("voltageL1", "1.0.32.7.0.255"), ("currentL1", "1.0.31.7.0.255"), ("frequency", "1.0.14.7.0.255"),
             ("activePowerImport", "1.0.1.7.0.255"), ("energyImport", "1.0.1.8.0.255")]
#: Faults a meter may get, with how they are injected (reject needs a fresh association to bite).
FAULTS = ("no_reply", "drop_connection", "reset", "garbage", "half_frame", "reject_association", "reboot",
          "delay", "blackhole")


class SilentRemoteHandler(logging.Handler):
    """What the gateway's ``init_logger`` expects on ``gateway.remote_handler``."""

    def __init__(self) -> None:
        super().__init__()
        self.loggers: dict = {}

    def add_logger(self, *args) -> None: ...

    def update_logger(self, *args) -> None: ...

    def remove_logger(self, *args) -> None: ...

    def emit(self, record) -> None: ...


class Recorder:
    """The gateway as the connector sees it: telemetry timestamps per meter, counted, nothing kept."""

    def __init__(self) -> None:
        self.remote_handler = SilentRemoteHandler()
        self.ts: dict[str, list[int]] = {}
        self.messages = 0
        self._lock = threading.Lock()

    def send_to_storage(self, connector_name, connector_id, data) -> None:
        with self._lock:
            self.messages += 1
            for entry in data.telemetry:
                self.ts.setdefault(data.device_name, []).append(entry.ts)

    def send_rpc_reply(self, *args, **kwargs) -> None:
        pass


@dataclass
class Plan:
    """One faulty meter's misbehaviour: ``kind`` from ``start`` to ``end`` (seconds into the run)."""

    meter: str
    kind: str
    start: float
    end: float
    injected: bool = False
    cleared: bool = False


@dataclass
class SoakResult:
    meters: int
    faulty: int
    period_s: float
    duration_s: float
    slots: int = 0
    slots_on_time: int = 0
    worst_meter_on_time: float = 1.0
    breakers_opened: list[str] = field(default_factory=list)
    breakers_open_at_end: list[str] = field(default_factory=list)
    dark_meters: list[str] = field(default_factory=list)
    stuck_polls: int = 0
    loop_restarts: int = 0
    loop_alive: bool = True
    polls_ok: int = 0
    polls_failed: int = 0
    skipped_by_breaker: int = 0
    faults_injected: dict = field(default_factory=dict)
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    top_growth: list[str] = field(default_factory=list)

    @property
    def on_time(self) -> float:
        return self.slots_on_time / self.slots if self.slots else 1.0

    def as_dict(self) -> dict:
        out = dict(vars(self))
        out["on_time"] = round(self.on_time, 5)
        return out


def _serve_remote(specs: list[dict], conn) -> None:
    with Simulator([MeterSpec.from_dict(s) for s in specs], control_port=0) as sim:
        conn.send(({s["name"]: sim.port_of(s["name"]) for s in specs}, sim.control_port))
        conn.recv()  # until the parent says stop


class RemoteSimulator:
    """The simulator in a child process, driven over its control channel: the bench's CPU is the client's.

    Offers the few ``Simulator`` methods the soak uses (port_of, inject, clear, reboot, stop).
    """

    def __init__(self, names: list[str]) -> None:
        import multiprocessing as mp
        import socket

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve_remote, args=([{"name": n} for n in names], child), daemon=True)
        self._proc.start()
        if not self._conn.poll(120):
            self._proc.kill()
            raise RuntimeError("simulator process did not start within 120 s")
        self._ports, control = self._conn.recv()
        self._sock = socket.create_connection(("127.0.0.1", control), timeout=10)
        self._file = self._sock.makefile("rw")

    def port_of(self, name: str) -> int:
        return self._ports[name]

    def _send(self, cmd: dict) -> None:
        self._file.write(json.dumps(cmd) + "\n")
        self._file.flush()
        answer = json.loads(self._file.readline())
        if not answer.get("ok"):
            raise RuntimeError(f"simulator control {cmd}: {answer}")

    def inject(self, name: str, fault: Fault) -> None:
        self._send({"meter": name, "fault": fault.kind, "seconds": fault.seconds, "before": fault.before})

    def clear(self, name: str) -> None:
        self._send({"meter": name, "clear": True})

    def reboot(self, name: str, close: bool = True) -> None:
        self._send({"meter": name, "reboot": True, "close": close})

    def stop(self) -> None:
        try:
            self._sock.close()
            self._conn.send("stop")
        except OSError:
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_plans(names: list[str], duration: float, rng: random.Random) -> list[Plan]:
    """Faults over the first 60 % of the run; every fourth faulty meter goes dark for long."""
    plans = []
    fault_end = duration * 0.6
    for i, name in enumerate(names):
        kind = "blackhole" if i % 4 == 0 else FAULTS[i % len(FAULTS)]
        start = rng.uniform(duration * 0.1, fault_end * 0.5)
        length = rng.uniform(fault_end * 0.3, fault_end - start) if kind == "blackhole" else \
            rng.uniform(duration * 0.05, fault_end - start)
        plans.append(Plan(name, kind, start, start + length))
    return plans


def connector_config(sim: Simulator, names: list[str], period: float, cooldown: float) -> dict:
    timeseries = [{"key": k, "obis": o} for k, o in REGISTERS]
    # Every soak meter is a default MeterSpec(name), here or in the simulator subprocess.
    devices = [{"deviceName": name, "deviceType": "soak-meter", "timeseries": timeseries,
                "connection": connection_for(MeterSpec(name), sim.port_of(name))} for name in names]
    return {"name": "DLMS Soak", "logLevel": "WARNING", "pollPeriod": period,
            "defaults": {"timeoutMs": 1000, "retries": 1, "connectTimeoutMs": 1000},
            "breaker": {"failureThreshold": 3, "cooldownS": cooldown, "maxCooldownS": cooldown * 4},
            "loopStallS": 20, "devices": devices}


def _inject(sim: Simulator, plan: Plan) -> None:
    if plan.kind == "reboot":
        sim.reboot(plan.meter, close=False)  # mid-association: the meter forgets it, the link stays
    elif plan.kind == "reject_association":
        sim.inject(plan.meter, Fault("reject_association"))
        sim.reboot(plan.meter, close=True)  # so that the next poll has to associate again
    elif plan.kind == "delay":
        sim.inject(plan.meter, Fault("delay", seconds=0.8))  # just inside the 1 s reply timeout
    else:
        sim.inject(plan.meter, Fault(plan.kind))


def _on_time(ts: list[int], name: str, period: float, t0: float, t1: float, slack: float) -> tuple[int, int]:
    """(slots, slots with a reading within ``slack`` after them) on the meter's grid in [t0, t1)."""
    offset = start_offset(name, period)
    first = offset + (int((t0 - offset) // period) + 1) * period
    stamps = sorted(t / 1000 for t in ts)
    slots = hits = 0
    j = 0
    slot = first
    while slot + period <= t1:
        slots += 1
        while j < len(stamps) and stamps[j] < slot:
            j += 1
        if j < len(stamps) and stamps[j] <= slot + slack:
            hits += 1
        slot += period
    return slots, hits


def run_soak(meters: int = 30, duration: float = 120.0, period: float = 2.0, faulty: float = 0.25,
             slack: float = 1.0, seed: int = 7, cooldown: float = 3.0, trace_memory: bool = False,
             progress=None, remote: bool = False) -> SoakResult:
    rng = random.Random(seed)
    names = [f"soak-{i:04d}" for i in range(meters)]
    n_faulty = int(meters * faulty)
    faulty_names = names[1::4][:n_faulty] if n_faulty <= len(names[1::4]) else rng.sample(names, n_faulty)
    healthy = [n for n in names if n not in set(faulty_names)]
    plans = make_plans(faulty_names, duration, rng)
    result = SoakResult(meters, n_faulty, period, duration)
    result.dark_meters = [p.meter for p in plans if p.kind == "blackhole"]
    for p in plans:
        result.faults_injected[p.kind] = result.faults_injected.get(p.kind, 0) + 1

    sim = RemoteSimulator(names) if remote else Simulator([MeterSpec(n) for n in names]).start()
    recorder = Recorder()
    connector = DLMSConnector(recorder, connector_config(sim, names, period, cooldown), "dlms")
    try:
        connector.open()
        warmup = min(period * 3, duration * 0.1)
        time.sleep(warmup)  # the bench's own pacing, not synchronisation
        if trace_memory:
            tracemalloc.start(10)
            snap0 = tracemalloc.take_snapshot()
        result.rss_start_mb = round(_rss_mb(), 1)
        t0 = time.time()
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < duration:
            for plan in plans:
                if not plan.injected and elapsed >= plan.start:
                    _inject(sim, plan)
                    plan.injected = True
                if plan.injected and not plan.cleared and elapsed >= plan.end:
                    sim.clear(plan.meter)
                    plan.cleared = True
            for name in result.dark_meters:
                if connector.devices[name].breaker.opens and name not in result.breakers_opened:
                    result.breakers_opened.append(name)
            if not connector._loop_thread.running:
                result.loop_alive = False
            if progress is not None:
                progress(elapsed, connector)
            time.sleep(0.2)  # scheduler tick of the fault plan
        t1 = time.time()
        result.rss_end_mb = round(_rss_mb(), 1)
        if trace_memory:
            snap1 = tracemalloc.take_snapshot()
            tracemalloc.stop()
            result.top_growth = [str(s) for s in snap1.compare_to(snap0, "lineno")[:8]]
        devices = connector.devices
        result.loop_restarts = connector.loop_restarts
        result.loop_alive = result.loop_alive and connector._loop_thread.running
        for name, device in devices.items():
            result.stuck_polls += device.stuck_polls
            result.polls_ok += device.stats.polls_ok
            result.polls_failed += device.stats.polls_failed
            result.skipped_by_breaker += device.breaker.skipped
            if device.breaker.opens and name not in result.breakers_opened:
                result.breakers_opened.append(name)
            if device.breaker.state is not BreakerState.CLOSED:
                result.breakers_open_at_end.append(name)
        worst = 1.0
        for name in healthy:
            slots, hits = _on_time(recorder.ts.get(name, []), name, period, t0, t1, slack)
            result.slots += slots
            result.slots_on_time += hits
            if slots:
                worst = min(worst, hits / slots)
        result.worst_meter_on_time = round(worst, 4)
    finally:
        connector.close()
        sim.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meters", type=int, default=300)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--period", type=float, default=10.0, help="poll period, seconds")
    ap.add_argument("--faulty", type=float, default=0.25, help="share of meters with faults")
    ap.add_argument("--slack", type=float, default=2.0, help="seconds after its slot a reading still counts on time")
    ap.add_argument("--cooldown", type=float, default=15.0, help="breaker.cooldownS")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--in-process", action="store_true", help="simulator in this process (default: a child)")
    ap.add_argument("--out", default=str(HERE / "results" / "soak.json"))
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    os.chdir(tempfile.mkdtemp(prefix="tb-dlms-soak-"))  # the gateway's logger writes its file into the cwd
    print(f"connector log: {Path.cwd()}", flush=True)

    def progress(elapsed, connector, last=[0.0]):  # noqa: B006 - the list is the state between calls
        if elapsed - last[0] >= 60:
            last[0] = elapsed
            ok = sum(d.stats.polls_ok for d in connector.devices.values())
            print(f"  {elapsed:5.0f} s: {ok} good polls, RSS {_rss_mb():.0f} MB", flush=True)

    print(f"soak: {args.meters} meters, {args.minutes:g} min, period {args.period:g} s, "
          f"{args.faulty:.0%} faulty", flush=True)
    result = run_soak(args.meters, args.minutes * 60, args.period, args.faulty, args.slack, args.seed,
                      args.cooldown, trace_memory=True, progress=progress, remote=not args.in_process)
    report = result.as_dict()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "top_growth"}, indent=2))
    print("tracemalloc top growth:")
    for line in result.top_growth:
        print("  ", line)
    ok = (result.on_time >= 0.99 and result.loop_alive and not result.stuck_polls
          and not result.breakers_open_at_end and set(result.dark_meters) <= set(result.breakers_opened))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
