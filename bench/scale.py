"""Scale: N simulated meters through the real gateway, a real broker and a subscriber, measured.

For each N: simulated meters in child processes, a Mosquitto broker, the real gateway with our
connector and file storage (``--storage sqlite`` to compare), and a subscriber that plays
ThingsBoard. Every meter polls 10 registers every ``--period`` seconds. After a warm-up of one
period, for ``--span`` seconds:

- on time: share of the meters' poll slots (each meter's own grid, see gateway/schedule.py)
  whose telemetry arrived with a timestamp within ``--slack`` seconds of the slot
- latency: subscriber arrival time minus the reading's timestamp (poll done -> MQTT), p50/p99
- gateway CPU seconds per 1000 readings (utime+stime of the process, /proc) and RSS
- MQTT messages per second arriving at the subscriber
- where the time goes: py-spy samples of the gateway process, top functions by own time

    python bench/scale.py --meters 100,500,1000,2000 --span 90
    python bench/scale.py --meters 7500 --add      # one more N, kept beside the earlier rows
Writes bench/results/scale.json, scale.md and scale.png.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from simproc import SimulatorProcess  # noqa: E402

from tb_dlms.devtools.fake_thingsboard import FakeThingsBoard  # noqa: E402
from tb_dlms.devtools.gateway_process import GatewayProcess  # noqa: E402
from tb_dlms.devtools.mosquitto import MosquittoBroker  # noqa: E402
from tb_dlms.gateway.schedule import start_offset  # noqa: E402

REGISTERS = [
    ("voltageL1", "1.0.32.7.0.255"), ("voltageL2", "1.0.52.7.0.255"), ("voltageL3", "1.0.72.7.0.255"),
    ("currentL1", "1.0.31.7.0.255"), ("currentL2", "1.0.51.7.0.255"), ("currentL3", "1.0.71.7.0.255"),
    ("frequency", "1.0.14.7.0.255"), ("activePowerImport", "1.0.1.7.0.255"),
    ("energyImport", "1.0.1.8.0.255"), ("energyExport", "1.0.2.8.0.255"),
]
METERS_PER_SIM_PROCESS = 1500


def connector_config(ports: dict[str, int], period: float) -> dict:
    devices = [{
        "deviceName": name,
        "deviceType": "bench-meter",
        "pollPeriod": period,
        "connection": {"host": "127.0.0.1", "port": port, "interface": "wrapper", "authentication": "none"},
        "timeseries": [{"key": k, "obis": o} for k, o in REGISTERS],
    } for name, port in ports.items()]
    return {"name": "DLMS Connector", "logLevel": "WARNING", "pollPeriod": period,
            "defaults": {"timeoutMs": 5000, "retries": 1}, "devices": devices}


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _package(frame: str) -> str:
    path = frame.rsplit("(", 1)[-1]
    for pkg in ("tb_dlms", "thingsboard_gateway", "gurux_dlms", "paho", "tb_device_mqtt", "tb_gateway_mqtt",
                "simplejson", "orjson", "json", "asyncio", "threading", "logging", "queue", "selectors"):
        if f"/{pkg}/" in path or f"/{pkg}.py" in path or path.startswith(pkg):
            return pkg
    return "other"


def py_spy_top(pid: int, seconds: int, out_dir: Path) -> dict:
    """Where the gateway's CPU goes: py-spy samples of threads holding the GIL (idle waits excluded).

    Returns the top leaf functions and the share of samples whose leaf is in each package.
    """
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        return {"error": "py-spy not installed"}
    raw = out_dir / f"pyspy-{pid}.txt"
    res = subprocess.run([exe, "record", "-p", str(pid), "-d", str(seconds), "-r", "100", "-f", "raw", "--gil",
                          "-o", str(raw), "--nonblocking"], capture_output=True, text=True)
    if res.returncode != 0 or not raw.exists():
        return {"error": f"py-spy failed: {res.stderr.strip()[:160]}"}
    leaves: collections.Counter = collections.Counter()
    packages: collections.Counter = collections.Counter()
    ours_inclusive = total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaf = frames[-1]
        leaves[leaf.replace(str(Path(sys.prefix)), "")] += n
        packages[_package(leaf)] += n
        if any("tb_dlms/" in f for f in frames):
            ours_inclusive += n
    if not total:
        return {"error": "no samples"}
    return {
        "samples": total,
        "tb_dlms_inclusive_pct": round(100.0 * ours_inclusive / total, 1),
        "by_package_pct": {k: round(100.0 * v / total, 1) for k, v in packages.most_common(8)},
        "top_leaf_functions_pct": [(k, round(100.0 * v / total, 1)) for k, v in leaves.most_common(10)],
    }


def measure(n: int, period: float, span: float, slack: float, profile_s: int, work: Path,
            storage: str = "sqlite") -> dict:
    names = [f"m{i:05d}" for i in range(n)]
    chunks = [names[i:i + METERS_PER_SIM_PROCESS] for i in range(0, n, METERS_PER_SIM_PROCESS)]
    sims = [SimulatorProcess([{"name": name} for name in chunk]) for chunk in chunks]
    for sim in sims:
        sim.__enter__()
    ports = {name: sim.port(name) for sim, chunk in zip(sims, chunks, strict=True) for name in chunk}
    broker = MosquittoBroker(workdir=work / f"broker-{n}-{storage}").start()
    tb = FakeThingsBoard(port=broker.port).start()
    gw = GatewayProcess(broker.port, connector_config(ports, period), workdir=work / f"gw-{n}-{storage}",
                        storage=storage)
    started = time.time()
    gw.start()
    try:
        # Warm-up: every meter has associated and reported, and the gateway's start-up backlog
        # (device connects, first polls) has drained: recent readings arrive within a second.
        deadline = time.time() + max(120, n * 0.06)
        steady = False
        while time.time() < deadline:
            recent = tb.telemetry[-max(100, n // 5):]
            seen = {p.device for p in tb.telemetry[-n * 2:]}
            lags = sorted(p.received - p.ts / 1000 for p in recent if p.ts)
            if len(seen) >= n * 0.99 and lags and lags[len(lags) // 2] < 1.0:
                steady = True
                break
            time.sleep(1.0)  # bounded readiness wait (benchmark warm-up, not a test)
        warmup_s = round(time.time() - started, 1)
        time.sleep(period)
        pid = gw.pid
        t0, cpu0 = time.time(), proc_cpu_seconds(pid)
        msgs0 = len(tb.messages)
        top = py_spy_top(pid, profile_s, work) if profile_s else {}
        remaining = t0 + span - time.time()
        if remaining > 0:
            time.sleep(remaining)
        t1, cpu1, rss = time.time(), proc_cpu_seconds(pid), proc_rss_mb(pid)
        msgs1 = len(tb.messages)
        time.sleep(min(5.0, period))  # let the last slots of the span arrive
        points = [p for p in tb.telemetry if p.ts is not None and t0 * 1000 <= p.ts < t1 * 1000]
    finally:
        gw.stop()
        tb.stop()
        broker.stop()
        for sim in sims:
            sim.__exit__(None, None, None)
    by_meter: dict[str, list[int]] = collections.defaultdict(list)
    for p in points:
        by_meter[p.device].append(p.ts)
    expected = on_time = 0
    for name in names:
        offset = start_offset(name, period)
        first = math.ceil((t0 - offset) / period)
        last = math.floor((t1 - offset - 1e-9) / period)
        slots = [offset + k * period for k in range(first, last + 1)]
        expected += len(slots)
        stamps = sorted(by_meter.get(name, []))
        for slot in slots:
            if any(abs(ts / 1000 - slot) <= slack for ts in stamps):
                on_time += 1
    latencies = sorted(p.received - p.ts / 1000 for p in points)
    buckets: dict[int, list[float]] = collections.defaultdict(list)
    for p in points:
        buckets[int((p.ts / 1000 - t0) // 10)].append(p.received - p.ts / 1000)
    timeline = [[10 * k, len(v), round(1000 * statistics.median(v)), round(1000 * max(v))]
                for k, v in sorted(buckets.items())]
    readings = sum(len(p.values) for p in points)
    cpu = cpu1 - cpu0
    return {
        "meters": n,
        "storage": storage,
        "warmup_s": warmup_s,
        # False: the start-up backlog never drained before the warm-up deadline (past the ceiling).
        "steady": steady,
        "period_s": period,
        "span_s": round(t1 - t0, 1),
        "polls_expected": expected,
        "polls_on_time": on_time,
        "on_time_pct": round(100.0 * on_time / expected, 2) if expected else None,
        "latency_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "latency_p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1) if latencies else None,
        "readings": readings,
        "gateway_cpu_s": round(cpu, 2),
        "gateway_cpu_share_of_core": round(cpu / (t1 - t0), 3),
        "cpu_s_per_1000_readings": round(1000 * cpu / readings, 3) if readings else None,
        "gateway_rss_mb": round(rss, 1),
        "mqtt_msgs_per_s": round((msgs1 - msgs0) / (t1 - t0), 1),
        "latency_over_2s_pct": round(100.0 * sum(1 for x in latencies if x > 2) / len(latencies), 3)
        if latencies else None,
        "latency_timeline_10s": timeline,  # [second of span, points, p50 ms, max ms]
        "profile": top,
    }


def write_reports(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(rows, indent=2))
    head = ("| meters | storage | on time % | p50 ms | p99 ms | CPU s / 1000 readings | CPU share of a core "
            "| RSS MB | MQTT msg/s |\n|---|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {r['meters']} | {r['storage']} "
             f"| {r['on_time_pct'] if r.get('steady', True) else 'backlog never drained'} "
             f"| {r['latency_p50_ms']} | {r['latency_p99_ms']} "
             f"| {r['cpu_s_per_1000_readings']} | {r['gateway_cpu_share_of_core']} | {r['gateway_rss_mb']} "
             f"| {r['mqtt_msgs_per_s']} |" for r in rows]
    prof = []
    for r in rows:
        p = r.get("profile") or {}
        if "samples" in p:
            prof.append(f"\n**{r['meters']} meters, {r['storage']} storage: gateway CPU by package (py-spy, GIL "
                        f"holders, {p['samples']} samples); our connector's code on the stack in "
                        f"{p['tb_dlms_inclusive_pct']}% of them**\n")
            prof.append(", ".join(f"{k} {v}%" for k, v in p["by_package_pct"].items()) + "\n")
            prof += [f"- {pct}% {name}" for name, pct in p["top_leaf_functions_pct"][:8]]
    (out / "scale.md").write_text(head + "\n".join(lines) + "\n" + "\n".join(prof) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    xs = [r["meters"] for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    plots = [("on_time_pct", "polls on time (%)"), ("latency_p99_ms", "poll-to-publish p99 (ms)"),
             ("gateway_cpu_share_of_core", "gateway CPU (share of one core)"), ("gateway_rss_mb", "gateway RSS (MB)")]
    for ax, (key, title) in zip(axes.flat, plots, strict=True):
        # Past the ceiling only the gateway's own cost means something: no on-time share, no latency.
        blank = [] if key.startswith("gateway") else [r for r in rows if not r.get("steady", True)]
        ys = [float("nan") if r[key] is None or r in blank else r[key] for r in rows]
        ax.plot(xs, ys, marker="o")
        for r in blank:
            ax.axvline(r["meters"], color="tab:red", linestyle="--", alpha=0.6)
            ax.annotate("backlog never\ndrained", (r["meters"], 0.5), xycoords=("data", "axes fraction"),
                        ha="right", fontsize=8, color="tab:red")
        ax.ticklabel_format(useOffset=False, style="plain")
        if key == "on_time_pct":
            ax.set_ylim(min([90.0] + [y for y in ys if y == y]) - 1, 100.5)
        ax.set_title(title)
        ax.set_xlabel("meters")
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"tb-dlms through the real gateway, {rows[0]['period_s']:g} s poll period, 10 registers")
    fig.tight_layout()
    fig.savefig(out / "scale.png", dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", default="100,500,1000,2000,5000")
    ap.add_argument("--period", type=float, default=15.0)
    ap.add_argument("--span", type=float, default=90.0)
    ap.add_argument("--slack", type=float, default=2.0, help="seconds a poll may be late and still count")
    ap.add_argument("--profile", type=int, default=20, help="py-spy seconds (0: off)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--storage", default="file", help="gateway storage: file, sqlite (comma list to compare)")
    ap.add_argument("--add", action="store_true",
                    help="keep the rows already in OUT/scale.json (a new N replaces the row of the same N and storage)")
    args = ap.parse_args(argv)
    rows = []
    if args.add and (Path(args.out) / "scale.json").exists():
        rows = json.loads((Path(args.out) / "scale.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="tb-dlms-scale-"))
    for n, storage in [(int(x), s) for x in args.meters.split(",") for s in args.storage.split(",")]:
        row = measure(n, args.period, args.span, args.slack, args.profile, work, storage)
        rows = sorted([r for r in rows if (r["meters"], r["storage"]) != (n, storage)] + [row],
                      key=lambda r: (r["meters"], r["storage"]))
        print(json.dumps({k: v for k, v in row.items() if k not in ("profile", "latency_timeline_10s")}), flush=True)
        write_reports(rows, Path(args.out))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
