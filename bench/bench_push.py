"""2000 meters connected in at once, each pushing a ciphered DataNotification every 15 s (issue 14).

The real gateway and Mosquitto, the fake ThingsBoard recording what arrives; the meters are
simulated ``CallingMeter``s on one loop in this process, identified by system title. Measured:
pushes delivered to ThingsBoard within 2 s of being sent, p99 send -> publish latency, the
gateway's RSS and CPU share. Goal: >= 99.5 % within 2 s.

    .venv/bin/python bench/bench_push.py --meters 2000 --period 15 --span 60
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "connectors"))
sys.path.insert(0, str(HERE))

from scale import proc_cpu_seconds, proc_rss_mb  # noqa: E402
from tb_dlms.devtools.fake_thingsboard import FakeThingsBoard  # noqa: E402
from tb_dlms.devtools.gateway_process import GatewayProcess, wait_until  # noqa: E402
from tb_dlms.devtools.mosquitto import MosquittoBroker, free_port  # noqa: E402
from tb_dlms.simulator import MeterSpec  # noqa: E402
from tb_dlms.simulator.callin import CallingMeter, CallInFleet  # noqa: E402

PUSH = {"objects": [{"key": "energyImport", "obis": "1.0.1.8.0.255"},
                    {"key": "energyExport", "obis": "1.0.2.8.0.255"},
                    {"key": "activePower", "obis": "1.0.1.7.0.255"}]}


def run(n: int, period: float, span: float, work: Path) -> dict:
    specs = [MeterSpec(f"P{i:05d}", serial_number=20_000_000 + i) for i in range(n)]
    bck, ak = specs[0].block_cipher_key.hex(), specs[0].authentication_key.hex()
    port = free_port()
    config = {"name": "DLMS Connector", "id": "bench-push", "logLevel": "INFO",
              "listeners": [{"name": "cell", "host": "127.0.0.1", "port": port, "identifyBy": "systemTitle",
                             "maxConnections": n + 100, "maxNewConnectionsPerS": 30}],
              "devices": [{"deviceName": s.name, "push": PUSH,
                           "connection": {"listener": "cell", "identity": s.system_title.hex(),
                                          "security": {"systemTitle": "5442444c4d533031", "blockCipherKey": "${B_BCK}",
                                                       "authenticationKey": "${B_AK}"}}} for s in specs]}
    broker = MosquittoBroker(workdir=work / "mosquitto")
    broker.start()
    tb = FakeThingsBoard(port=broker.port).start()
    gw = GatewayProcess(broker.port, connector_config=config, workdir=work / "gw",
                        extra_env={"B_BCK": bck, "B_AK": ak}).start()
    callers = [CallingMeter(s, "127.0.0.1", port, push_period=period, ciphered=True, redial_s=2.0,
                            push_offset=period * (i / n) + 1) for i, s in enumerate(specs)]
    fleet = CallInFleet(callers).start()
    try:
        # All dial at once; the listener admits maxNewConnectionsPerS of them a second.
        wait_until(lambda: sum(len(tb.telemetry_of(s.name)) > 0 for s in specs[:: max(1, n // 50)]) >= 50 * 0.99,
                   n / 30 + 120, "every meter connected and pushing")
        t0, cpu0 = time.time(), proc_cpu_seconds(gw.pid)
        time.sleep(span)
        t1, cpu1, rss = time.time(), proc_cpu_seconds(gw.pid), proc_rss_mb(gw.pid)
        time.sleep(5)  # the last pushes of the window arrive
        latencies, sent_in_window = [], 0
        for c in callers:
            got = {p.ts: p.received for p in tb.telemetry_of(c.name)}
            for sent, ts, _values in list(c.sent):
                if t0 <= sent < t1:
                    sent_in_window += 1
                    latencies.append(got[ts] - sent if ts in got else float("inf"))
        latencies.sort()
        on_time = sum(1 for x in latencies if x <= 2.0)
        p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else None
        return {"meters": n, "period_s": period, "window_s": round(t1 - t0, 1), "pushes_sent": sent_in_window,
                "delivered_within_2s_pct": round(100 * on_time / sent_in_window, 3) if sent_in_window else None,
                "lost": sum(1 for x in latencies if x == float("inf")),
                "p50_latency_s": round(latencies[len(latencies) // 2], 3) if latencies else None,
                "p99_latency_s": round(p99, 3) if p99 is not None and p99 != float("inf") else p99,
                "gateway_cpu_share_of_core": round((cpu1 - cpu0) / (t1 - t0), 3), "gateway_rss_mb": round(rss, 1)}
    finally:
        fleet.stop()
        gw.stop()
        tb.stop()
        broker.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--meters", type=int, default=2000)
    p.add_argument("--period", type=float, default=15.0)
    p.add_argument("--span", type=float, default=60.0)
    p.add_argument("--out", default=str(HERE / "results" / "push.json"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp:
        result = run(args.meters, args.period, args.span, Path(tmp))
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if (result["delivered_within_2s_pct"] or 0) >= 99.5 else 1


if __name__ == "__main__":
    sys.exit(main())
