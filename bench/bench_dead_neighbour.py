"""What an absent meter on a shared HDLC bus costs its neighbours: their polls' on-time share.

Several simulated HDLC meters sit behind one TCP port (a serial server with an RS-485 bus); one
more address is configured but no meter answers it (silence, as on a real bus). The real connector
(DLMSConnector, real sessions and sockets) polls them all; a healthy meter's poll is on time when
its telemetry arrives within ``late_after_s`` of its grid slot. Only bus holding can make a poll
that late: a healthy poll on loopback takes milliseconds, the dead meter's timeouts take seconds.

    python bench/bench_dead_neighbour.py [--duration 90] [--period 10] [--timeout-ms 5000] [--retries 2]

Measured on this 2-core machine (issue 11, item 21), field defaults (timeoutMs 5000, retries 2),
4 healthy meters + 1 absent, period 10 s, late after 2 s, 90 s (bench/results/dead_neighbour.md):
  turn held across resends, full SNRM with resends to the absent address:  59.4 % on time (19/32)
  a turn per attempt, one short SNRM probe (timeoutMs / 4):                100 % on time (32/32)
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time

from tb_dlms.devtools.fake_gateway import FakeGateway
from tb_dlms.devtools.sim_devices import device_entry
from tb_dlms.gateway.connector import DLMSConnector
from tb_dlms.gateway.schedule import start_offset
from tb_dlms.simulator.simulator import Simulator
from tb_dlms.simulator.spec import MeterSpec

DEAD = "absent"
TIMESERIES = [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}]
#: Physical address configured for the absent meter; no simulated meter has it.
DEAD_PHYSICAL = 99


def healthy_names(n: int) -> list[str]:
    return [f"bus-{i}" for i in range(n)]


def on_time_share(stamps_ms: list[int], name: str, period: float, start: float, end: float,
                  late_after_s: float) -> tuple[int, int]:
    """(on-time slots, slots) of ``name``'s grid between ``start`` and ``end - period``."""
    offset = start_offset(name, period)
    first = math.floor((start - offset) / period) + 1
    slots = [offset + k * period for k in range(first, math.floor((end - period - offset) / period) + 1)]
    stamps = [ts / 1000 for ts in stamps_ms]
    on_time = sum(1 for s in slots if any(s <= t <= s + late_after_s for t in stamps))
    return on_time, len(slots)


def run(duration_s: float = 90.0, period_s: float = 10.0, timeout_ms: int = 5000, retries: int = 2,
        neighbours: int = 4, late_after_s: float = 2.0, probe_timeout_ms: int | None = None) -> dict:
    specs = [MeterSpec(n, interface="hdlc", hdlc_group="bus", physical_address=17 + i, address_size=2)
             for i, n in enumerate(healthy_names(neighbours))]
    with Simulator(specs) as sim:
        port = sim.port_of(specs[0].name)
        timeouts = {"timeoutMs": timeout_ms, "retries": retries, "connectTimeoutMs": 2000}
        if probe_timeout_ms is not None:
            timeouts["probeTimeoutMs"] = probe_timeout_ms
        # The absent meter: one more address on the bus port that no simulated meter answers.
        absent = MeterSpec(DEAD, interface="hdlc", physical_address=DEAD_PHYSICAL, address_size=2)
        devices = [device_entry(spec, port, TIMESERIES, device_type=None, connection=timeouts, pollPeriod=period_s)
                   for spec in [*specs, absent]]
        recorder = FakeGateway(keep="timestamps")
        connector = DLMSConnector(recorder, {"name": "DLMS Bus", "logLevel": "ERROR", "devices": devices}, "dlms")
        logging.getLogger(connector.get_name()).setLevel(logging.CRITICAL)  # the absent meter's warnings
        connector.open()
        try:
            # Counted from every neighbour's first reading: the start-up (imports, first
            # associations) is not the bus. The absent meter is probed meanwhile and afterwards.
            deadline = time.monotonic() + 60
            while not all(recorder.ts.get(n) for n in healthy_names(neighbours)) and time.monotonic() < deadline:
                time.sleep(0.05)
            start = time.time()
            time.sleep(duration_s)
        finally:
            end = time.time()
            dead = connector.devices[DEAD].report()
            connector.close()
    per_meter = {}
    total_on = total = 0
    for name in healthy_names(neighbours):
        on, n = on_time_share(recorder.ts.get(name, []), name, period_s, start, end, late_after_s)
        per_meter[name] = f"{on}/{n}"
        total_on, total = total_on + on, total + n
    return {"onTimeShare": round(total_on / total, 4) if total else None, "onTime": total_on, "slots": total,
            "perMeter": per_meter, "deadPollsFailed": dead["pollsFailed"], "deadRoundTrips": dead["roundTrips"],
            "deadBreaker": dead["breaker"]["state"], "durationS": duration_s, "periodS": period_s,
            "timeoutMs": timeout_ms, "retries": retries, "lateAfterS": late_after_s, "neighbours": neighbours}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--duration", type=float, default=90.0, help="seconds of polling")
    ap.add_argument("--period", type=float, default=10.0, help="pollPeriod of every meter (s)")
    ap.add_argument("--timeout-ms", type=int, default=5000, help="connection.timeoutMs")
    ap.add_argument("--retries", type=int, default=2, help="connection.retries")
    ap.add_argument("--neighbours", type=int, default=4, help="healthy meters on the bus")
    ap.add_argument("--late-after", type=float, default=2.0, help="a poll later than this after its slot is late (s)")
    args = ap.parse_args(argv)
    print(json.dumps(run(args.duration, args.period, args.timeout_ms, args.retries, args.neighbours,
                         args.late_after), indent=1))


if __name__ == "__main__":
    main()
