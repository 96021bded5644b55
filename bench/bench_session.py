"""Our session against a plain per-attribute gurux read loop, side by side in one run.

Both read the same 10 registers from the same simulated meter (served by a separate process, so
that CPU time measured here is the client's alone). The plain loop does what the Gurux client
example does: one GET per value and one per scaler, over a blocking socket. Ours keeps the
association, caches scalers and batches with GET-with-list; it is measured twice, without
authentication and with High-GMAC (every run, so there is no flag for it).

    python bench/bench_session.py [--polls 30] [--delays 0,0.05] [--mechanisms all|none] [--json]

Prints round trips per poll, client CPU microseconds per reading and wall milliseconds per poll
for each, and the plain/ours ratios (``--json``: the same rows as JSON). Wall time is noisy on a
shared machine; round trips and CPU are not. With ``--mechanisms all`` (the default) every HLS
mechanism and security suite is measured too, each as a ratio to High-GMAC's steady-state CPU per
reading (issue 15's goal: none above 2x).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import sys
import time
from dataclasses import dataclass

from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
from gurux_dlms.enums import Authentication as GxAuth, InterfaceType
from gurux_dlms.objects import GXDLMSRegister

from tb_dlms.protocol.framing import WrapperFrameReader
from tb_dlms.protocol.readings import AttributeRef
from tb_dlms.protocol.session import MeterSession
from tb_dlms.protocol.settings import Authentication, MeterSettings, Secret, Security
from tb_dlms.simulator.client_config import meter_settings_for
from tb_dlms.simulator.spec import MeterSpec

sys.path.insert(0, __import__("os").path.dirname(__file__))
from simproc import SimulatorProcess  # noqa: E402

REGISTERS = [
    "1.0.32.7.0.255", "1.0.52.7.0.255", "1.0.72.7.0.255",
    "1.0.31.7.0.255", "1.0.51.7.0.255", "1.0.71.7.0.255",
    "1.0.14.7.0.255", "1.0.1.7.0.255", "1.0.1.8.0.255", "1.0.2.8.0.255",
]


@dataclass
class Result:
    name: str
    round_trips_per_poll: float
    cpu_us_per_reading: float
    wall_ms_per_poll: float
    #: The user-space part of the CPU (the rest is the kernel's loopback TCP work for our sends).
    user_us_per_reading: float = 0.0


class PlainLoop:
    """The Gurux example's way: blocking socket, one GET per attribute, scalers read every poll."""

    def __init__(self, host: str, port: int) -> None:
        self.client = GXDLMSClient(True, 16, 1, GxAuth.NONE, None, InterfaceType.WRAPPER)
        self.sock = socket.create_connection((host, port), timeout=10)
        self.reader = WrapperFrameReader()
        self.round_trips = 0
        self._exchange(self.client.aarqRequest())
        self.client.parseAareResponse(self._last.data)

    def _exchange(self, frames) -> GXReplyData:
        reply = GXReplyData()
        for frame in frames:
            reply.clear()
            self.sock.sendall(bytes(frame))
            self.round_trips += 1
            while True:
                got = self.reader.feed(self.sock.recv(4096))
                if got and self.client.getData(GXByteBuffer(got[0].raw), reply, None):
                    break
            while reply.isMoreData():
                self.sock.sendall(bytes(self.client.receiverReady(reply)))
                self.round_trips += 1
                while True:
                    got = self.reader.feed(self.sock.recv(4096))
                    if got and self.client.getData(GXByteBuffer(got[0].raw), reply, None):
                        break
        self._last = reply
        return reply

    def poll(self) -> list[float]:
        values = []
        for ln in REGISTERS:
            reg = GXDLMSRegister(ln)
            self.client.updateValue(reg, 3, self._exchange(self.client.read(reg, 3)).value)
            self.client.updateValue(reg, 2, self._exchange(self.client.read(reg, 2)).value)
            values.append(reg.value)
        return values

    def close(self) -> None:
        self.sock.close()


def user_cpu() -> float:
    """User CPU seconds of this process (getrusage: finer than the 10 ms ticks of os.times)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def safe_ratio(a: float, b: float) -> float:
    """a/b; infinite when b is below what the clock can resolve (very short runs)."""
    return a / b if b > 0 else float("inf")


def bench_plain(port: int, polls: int) -> Result:
    loop = PlainLoop("127.0.0.1", port)
    loop.poll()  # warm-up
    rt0, cpu0, user0, wall0 = loop.round_trips, time.process_time(), user_cpu(), time.perf_counter()
    for _ in range(polls):
        loop.poll()
    cpu, user, wall = time.process_time() - cpu0, user_cpu() - user0, time.perf_counter() - wall0
    rts = loop.round_trips - rt0
    loop.close()
    n = polls * len(REGISTERS)
    return Result("plain gurux loop", rts / polls, cpu / n * 1e6, wall / polls * 1e3, user / n * 1e6)


def bench_session(settings: MeterSettings, polls: int, name: str) -> Result:
    async def run() -> Result:
        session = MeterSession(settings)
        refs = [AttributeRef.of(r) for r in REGISTERS]
        first = await session.read(refs)  # associates, caches scalers
        bad = [r.error for r in first if not r.ok]
        if bad:
            raise SystemExit(f"{name}: read failed: {bad}")
        rt0, cpu0, user0, wall0 = session.stats.round_trips, time.process_time(), user_cpu(), time.perf_counter()
        for _ in range(polls):
            await session.read(refs)
        cpu, user, wall = time.process_time() - cpu0, user_cpu() - user0, time.perf_counter() - wall0
        rts = session.stats.round_trips - rt0
        await session.close()
        n = polls * len(REGISTERS)
        return Result(name, rts / polls, cpu / n * 1e6, wall / polls * 1e3, user / n * 1e6)

    return asyncio.run(run())


#: name -> spec settings of the meters measured against High-GMAC (and a dedicated-key flag).
MECHANISMS: dict[str, dict] = {
    "HLS (mechanism 2)": {"auth": "high"},
    "HLS-MD5": {"auth": "high_md5"},
    "HLS-SHA1": {"auth": "high_sha1"},
    "HLS-SHA256": {"auth": "high_sha256"},
    "HLS-SHA256 + AES-GCM": {"auth": "high_sha256", "security_policy": "authentication_encryption"},
    "HLS-ECDSA suite 1": {"auth": "high_ecdsa", "security_suite": 1},
    "HLS-ECDSA suite 2": {"auth": "high_ecdsa", "security_suite": 2},
    "HLS-ECDSA suite 2, ded": {"auth": "high_ecdsa", "security_suite": 2, "dedicated": True},
    "HLS-GMAC, ded": {"auth": "high_gmac", "dedicated": True},
}


def bench_mechanisms(polls: int, delay: float) -> list[dict]:
    """CPU per steady-state reading of each mechanism, next to High-GMAC's."""
    specs = {"gmac": {"auth": "high_gmac"}}
    for i, spec in enumerate(MECHANISMS.values()):
        specs[f"m{i}"] = {k: v for k, v in spec.items() if k != "dedicated"}
    with SimulatorProcess([{"name": key, "delay": delay, **spec} for key, spec in specs.items()]) as sim:
        def measure(key: str, name: str, dedicated: bool = False) -> Result:
            spec = MeterSpec(name=key, **specs[key])
            return bench_session(meter_settings_for(spec, sim.port(key), dedicated_key=dedicated, timeout=5.0),
                                 polls, name)

        gmac = measure("gmac", "High-GMAC (suite 0)")
        rows = [{"delay_ms": delay * 1000, **gmac.__dict__, "vs_gmac": 1.0}]
        for i, (name, spec) in enumerate(MECHANISMS.items()):
            r = measure(f"m{i}", name, spec.get("dedicated", False))
            rows.append({"delay_ms": delay * 1000, **r.__dict__,
                         "vs_gmac": safe_ratio(r.cpu_us_per_reading, gmac.cpu_us_per_reading)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--polls", type=int, default=30)
    ap.add_argument("--delays", default="0,0.05", help="injected reply delays in seconds")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--mechanisms", choices=("all", "none"), default="all",
                    help="also measure every HLS mechanism and suite against High-GMAC")
    args = ap.parse_args(argv)
    rows = []
    mechanisms: list[dict] = []
    for delay in [float(d) for d in args.delays.split(",")]:
        specs = [{"name": "plain", "delay": delay}, {"name": "ours", "delay": delay},
                 {"name": "gmac", "delay": delay, "auth": "high_gmac"}]
        with SimulatorProcess(specs) as sim:
            plain = bench_plain(sim.port("plain"), args.polls)
            ours = bench_session(MeterSettings("127.0.0.1", sim.port("ours"), name="ours"), args.polls,
                                 "tb-dlms session")
            spec = MeterSpec(name="gmac", auth="high_gmac")
            gmac = bench_session(
                MeterSettings("127.0.0.1", sim.port("gmac"), client_address=spec.client_address,
                              authentication=Authentication.HIGH_GMAC,
                              security=Security(b"TBDLMS01", Secret(spec.block_cipher_key),
                                                Secret(spec.authentication_key)), name="gmac"),
                args.polls, "tb-dlms session, High-GMAC")
        for r in (plain, ours, gmac):
            rows.append({"delay_ms": delay * 1000, **r.__dict__})
        rows.append({
            "delay_ms": delay * 1000, "name": "ratio plain/ours",
            "round_trips_per_poll": safe_ratio(plain.round_trips_per_poll, ours.round_trips_per_poll),
            "cpu_us_per_reading": safe_ratio(plain.cpu_us_per_reading, ours.cpu_us_per_reading),
            "wall_ms_per_poll": safe_ratio(plain.wall_ms_per_poll, ours.wall_ms_per_poll),
            "user_us_per_reading": safe_ratio(plain.user_us_per_reading, ours.user_us_per_reading),
        })
        if args.mechanisms == "all":
            mechanisms += bench_mechanisms(args.polls, delay)
    if args.json:
        print(json.dumps(rows + mechanisms, indent=2))
    else:
        print(f"{'delay':>6} {'client':<28} {'RT/poll':>8} {'CPU us/reading':>15} {'user us/rdg':>12} "
              f"{'wall ms/poll':>13}")
        for r in rows:
            ratio = r["name"].startswith("ratio")
            fmt = "{:>7.1f}x" if ratio else "{:>8.1f}"
            print(f"{r['delay_ms']:>4.0f}ms {r['name']:<28} " + fmt.format(r["round_trips_per_poll"])
                  + f" {r['cpu_us_per_reading']:>14.1f}{'x' if ratio else ' '}"
                  + f" {r['user_us_per_reading']:>11.1f}{'x' if ratio else ' '}"
                  + f" {r['wall_ms_per_poll']:>12.1f}{'x' if ratio else ' '}")
        if mechanisms:
            print(f"\n{'delay':>6} {'mechanism':<28} {'RT/poll':>8} {'CPU us/reading':>15} {'user us/rdg':>12} "
                  f"{'vs GMAC':>8}")
            for r in mechanisms:
                print(f"{r['delay_ms']:>4.0f}ms {r['name']:<28} {r['round_trips_per_poll']:>8.1f} "
                      f"{r['cpu_us_per_reading']:>14.1f}  {r['user_us_per_reading']:>11.1f}  {r['vs_gmac']:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
