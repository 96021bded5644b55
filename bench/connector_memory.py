"""Our connector's share of the gateway's memory per meter: N simulated meters, no gateway core.

The connector runs against a minimal stand-in for the gateway that keeps only the names of the
devices that reported, so the RSS growth measured here is the connector's own (sessions, gurux
clients, schedules, statistics). Compare with the gateway RSS per meter in bench/results/scale.md.

    python bench/connector_memory.py [--meters 1000]
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scale import connector_config, proc_rss_mb  # noqa: E402
from simproc import SimulatorProcess  # noqa: E402

from tb_dlms.devtools.fake_gateway import FakeGateway  # noqa: E402
from tb_dlms.gateway.connector import DLMSConnector  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=1000)
    ap.add_argument("--period", type=float, default=15.0)
    args = ap.parse_args(argv)
    names = [f"m{i:05d}" for i in range(args.meters)]
    with SimulatorProcess([{"name": n} for n in names]) as sim:
        gateway = FakeGateway(keep="names")  # only who reported: the growth measured is the connector's
        gc.collect()
        before = proc_rss_mb(os.getpid())
        connector = DLMSConnector(gateway, connector_config({n: sim.port(n) for n in names}, args.period), "dlms")
        connector.open()
        try:
            with gateway.changed:
                gateway.changed.wait_for(lambda: len(gateway.reported) >= args.meters, args.period * 8)
            # One more full period in steady state: every meter associated, scalers cached, stats filled.
            time.sleep(args.period)
            gc.collect()
            after = proc_rss_mb(os.getpid())
        finally:
            connector.close()
    per_meter_kb = (after - before) * 1024 / args.meters
    print(f"{args.meters} meters ({len(gateway.reported)} reported): connector RSS +{after - before:.1f} MB, "
          f"{per_meter_kb:.1f} KB per meter")
    return 0


if __name__ == "__main__":
    sys.exit(main())
