"""A 9600-baud serial line used to its physical limit: profile read-outs and polls against wire time.

The simulator serves meters on a pty at the line's real pace (10 bits a byte, a turnaround before
each reply: simulator/serial_line.py); the client is the production MeterSession over the
production SerialLink. For each read we count the bytes that crossed the line (both ways, from
the line's own counters) and the requests the meter answered, and compare our wall time with the
physical lower bound: bytes x 10 / baud + one turnaround per request.

    python bench/bench_serial.py [--baud 9600] [--turnaround-ms 20] [--days 1 3 7] [--quick]

Reads (each from a fresh association: SNRM/UA, AARQ/AARE, capture objects, scalers, the buffer):
  - 1, 3 and 7 days of a 4-channel 15-minute load profile (1.0.99.2.0.255: clock, A+, A-, R+, S),
    with the HDLC window and information field the meter accepts (window 7, 512 bytes); the same
    from a meter that sends the clock as null-data after the first row (compact profiles: 1 byte
    instead of 14 a row); and with window 1 and 128 bytes (what most configurations still use);
  - a steady poll of 10 registers (association open, scalers known);
  - 8 meters on one bus polled in a cycle (10 registers each), against the sum of their wire times.
The DLMS UA's own figures for the profile read-out (optical port, 9600 baud, window 7): 4 s for
1 day, 12 s for 3 days, 29 s for 7 days.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

from tb_dlms.protocol.readings import AttributeRef
from tb_dlms.protocol.session import MeterSession
from tb_dlms.protocol.settings import Interface, MeterSettings, SerialSettings
from tb_dlms.protocol.pools import link_pool
from tb_dlms.simulator import MeterSpec, Simulator
from tb_dlms.simulator.objects import LOAD_PROFILE_4

UA_SECONDS = {1: 4.0, 3: 12.0, 7: 29.0}
REGISTERS = [AttributeRef.of(o, 3, 2) for o in (
    "1.0.32.7.0.255", "1.0.52.7.0.255", "1.0.72.7.0.255", "1.0.31.7.0.255", "1.0.51.7.0.255",
    "1.0.71.7.0.255", "1.0.14.7.0.255", "1.0.1.7.0.255", "1.0.1.8.0.255", "1.0.2.8.0.255")]
RESULTS = Path(__file__).resolve().parent / "results"


def settings(path: str, physical: int, window: int, info: int, baud: int) -> MeterSettings:
    return MeterSettings("", 0, Interface.HDLC, physical_address=physical, address_size=2, timeout=10.0,
                         hdlc_window=window, hdlc_max_info=info, max_reply_bytes=1 << 20,
                         serial=SerialSettings(path, baudrate=baud), name=f"phys {physical}")


class Meter:
    """The line counters and the session counters around one measured read."""

    def __init__(self, sim: Simulator, line: str, baud: int, turnaround: float) -> None:
        self.line = sim.line(line)
        self.sim = sim
        self.baud, self.turnaround = baud, turnaround

    def mark(self):
        return self.line.bytes_in, self.line.bytes_out, sum(m.requests for m in self.line.meters)

    def since(self, mark, wall: float) -> dict:
        b_in, b_out, req = self.mark()
        wire_bytes = (b_in - mark[0]) + (b_out - mark[1])
        requests = req - mark[2]
        bound = wire_bytes * 10 / self.baud + requests * self.turnaround
        return {"bytes": wire_bytes, "requests": requests, "bound_s": round(bound, 3), "wall_s": round(wall, 3),
                "ratio": round(wall / bound, 3) if bound else None}


async def profile_read(meter: Meter, path: str, days: int, window: int, info: int) -> dict:
    pool = link_pool()
    session = MeterSession(settings(path, 17, window, info, meter.baud), pool)
    end = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    start = end - dt.timedelta(days=days)
    mark, t0 = meter.mark(), time.perf_counter()
    data = await session.read_profile(LOAD_PROFILE_4, start, end)
    wall = time.perf_counter() - t0
    result = meter.since(mark, wall) | {"rows": len(data.rows), "window": window, "maxInfo": info, "days": days}
    await session.close()
    return result


async def poll(meter: Meter, path: str, n: int, window: int, info: int) -> dict:
    session = MeterSession(settings(path, 17, window, info, meter.baud), link_pool())
    await session.read(REGISTERS)  # associate, learn the scalers
    mark, t0 = meter.mark(), time.perf_counter()
    for _ in range(n):
        readings = await session.read(REGISTERS)
        assert all(r.ok for r in readings), readings
    result = meter.since(mark, (time.perf_counter() - t0) / n)
    result["bytes"] //= n
    result["requests"] //= n
    result["bound_s"] = round(result["bound_s"] / n, 4)
    result["ratio"] = round(result["wall_s"] / result["bound_s"], 3)
    await session.close()
    return result


async def bus_cycle(meter: Meter, path: str, count: int, cycles: int, window: int, info: int) -> dict:
    pool = link_pool()
    sessions = [MeterSession(settings(path, 17 + i, window, info, meter.baud), pool) for i in range(count)]
    await asyncio.gather(*(s.read(REGISTERS) for s in sessions))
    mark, t0 = meter.mark(), time.perf_counter()
    for _ in range(cycles):
        await asyncio.gather(*(s.read(REGISTERS) for s in sessions))
    result = meter.since(mark, (time.perf_counter() - t0) / cycles)
    result["bound_s"] = round(result["bound_s"] / cycles, 3)
    result["ratio"] = round(result["wall_s"] / result["bound_s"], 3)
    result["bytes"] //= cycles
    result["requests"] //= cycles
    result["meters"] = count
    for s in sessions:
        await s.close()
    return result


def run(args) -> dict:
    turnaround = args.turnaround_ms / 1000
    tmp = tempfile.mkdtemp(prefix="bench-serial-")
    one, bus, compact = f"{tmp}/ttyONE", f"{tmp}/ttyBUS", f"{tmp}/ttyCOMPACT"
    specs = [MeterSpec("one", interface="hdlc", serial_line="one", serial_path=one, baudrate=args.baud,
                       physical_address=17, address_size=2, delay=turnaround, profile_days=max(args.days) + 1,
                       max_window=7, max_info=512, seed=1),
              MeterSpec("compact", interface="hdlc", serial_line="compact", serial_path=compact, baudrate=args.baud,
                        physical_address=17, address_size=2, delay=turnaround, profile_days=max(args.days) + 1,
                        max_window=7, max_info=512, seed=1, profile_null_clock=True)]
    specs += [MeterSpec(f"bus-{i}", interface="hdlc", serial_line="bus", serial_path=bus, baudrate=args.baud,
                        physical_address=17 + i, address_size=2, delay=turnaround, seed=10 + i)
              for i in range(8)]
    out: dict = {"baud": args.baud, "turnaround_ms": args.turnaround_ms, "profiles": [], "poll": None, "bus": None}
    with Simulator(specs) as sim:
        meter = Meter(sim, "one", args.baud, turnaround)
        lean = Meter(sim, "compact", args.baud, turnaround)

        async def main():
            for days in args.days:
                for m, path, window, info in ((meter, one, 7, 512), (lean, compact, 7, 512), (meter, one, 1, 128)):
                    r = await profile_read(m, path, days, window, info)
                    r["clock"] = "null after row 1" if m is lean else "every row"
                    out["profiles"].append(r)
                    print(f"profile {days} d  window {window} info {info:4} clock {r['clock']:16}: {r['rows']:4} rows  "
                          f"{r['bytes']:6} B  "
                          f"{r['requests']:4} req  bound {r['bound_s']:6.2f} s  wall {r['wall_s']:6.2f} s  "
                          f"ratio {r['ratio']:.3f}  (DLMS UA {UA_SECONDS.get(days, '-')} s)", flush=True)
            out["poll"] = r = await poll(meter, one, 3 if args.quick else 10, 7, 512)
            print(f"poll 10 registers: {r['bytes']} B  {r['requests']} req  bound {r['bound_s']:.3f} s  "
                  f"wall {r['wall_s']:.3f} s  ratio {r['ratio']:.3f}", flush=True)
            out["bus"] = r = await bus_cycle(Meter(sim, "bus", args.baud, turnaround), bus, 8,
                                             2 if args.quick else 5, 1, 128)
            print(f"bus of 8 meters, one cycle of 10 registers each: {r['bytes']} B  {r['requests']} req  "
                  f"bound {r['bound_s']:.3f} s  wall {r['wall_s']:.3f} s  ratio {r['ratio']:.3f}", flush=True)

        asyncio.run(main())
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--turnaround-ms", type=float, default=20.0, help="the meter's reaction time before a reply")
    p.add_argument("--days", type=int, nargs="+", default=[1, 3, 7])
    p.add_argument("--quick", action="store_true", help="fewer polls and cycles")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args(argv)
    out = run(args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
