"""``python -m tb_dlms.simulator`` / ``dlms-simulator``: run simulated meters until SIGINT/SIGTERM.

Prints one line per meter (what a client config needs), then ``READY`` (tests and scripts wait
for it), and nothing else on stdout; logs go to stderr.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from ..protocol.settings import DEFAULT_PORTS, Interface
from .simulator import Simulator
from .spec import (AUTH_LEVELS, DEFAULT_AUTH_CLIENT, DEFAULT_AUTHENTICATION_KEY, DEFAULT_BLOCK_CIPHER_KEY,
                   POLICIES, PUBLIC_CLIENT, MeterSpec)


def _parser() -> argparse.ArgumentParser:
    # Every flag has a help text so ArgumentDefaultsHelpFormatter prints its default: a user
    # pointing a client at the simulator needs the password, ports and keys without reading code.
    p = argparse.ArgumentParser(prog="dlms-simulator", description="Simulated DLMS/COSEM meters",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--meters", type=int, default=1, help="WRAPPER (or --interface) meters")
    p.add_argument("--interface", choices=("wrapper", "hdlc"), default="wrapper", help="framing of --meters")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--base-port", type=int, default=DEFAULT_PORTS[Interface.WRAPPER],
                   help="first port, one per meter; 0 = free ports")
    p.add_argument("--auth", choices=AUTH_LEVELS, default="none", help="authentication the meters require")
    p.add_argument("--suite", type=int, choices=(0, 1, 2), default=0,
                   help="security suite (high_ecdsa: 1 or 2; ECDSA keys from simulator/keys.py; suite 2 "
                        "doubles a 16-byte key to 32)")
    p.add_argument("--policy", choices=POLICIES, default=None,
                   help="APDU protection; None: authentication_encryption for high_gmac/high_ecdsa, else none")
    p.add_argument("--password", default=MeterSpec.password,
                   help="Low authentication password, the HLS secret of high/high_md5/high_sha1/high_sha256")
    p.add_argument("--client-address", type=int, default=None,
                   help="client address of the --auth association; None: "
                        + ", ".join(f"{c} for {a}" for a, c in DEFAULT_AUTH_CLIENT.items() if c is not None)
                        + f" (the public client {PUBLIC_CLIENT} is always served)")
    p.add_argument("--block-cipher-key", default=DEFAULT_BLOCK_CIPHER_KEY.hex(),
                   help="block cipher key (ciphering, High-GMAC), hex, 16 bytes")
    p.add_argument("--authentication-key", default=DEFAULT_AUTHENTICATION_KEY.hex(),
                   help="authentication key (ciphering, High-GMAC), hex, 16 bytes")
    p.add_argument("--delay", type=float, default=0.0, help="seconds before each reply")
    p.add_argument("--profile-days", type=int, default=3, help="days of load profile the meters hold")
    p.add_argument("--seed", type=int, default=None, help="seed for the meters' values (None: random)")
    p.add_argument("--reject-range", action="store_true",
                   help="refuse range-selective profile reads (by date), like meters that only take entries")
    p.add_argument("--hdlc-shared-port", type=int, default=None,
                   help="also serve --hdlc-meters HDLC meters behind this one port (0 = a free port)")
    p.add_argument("--hdlc-meters", type=int, default=3, help="meters behind --hdlc-shared-port")
    p.add_argument("--config", help="JSON file: {\"meters\": [MeterSpec fields...]}")
    p.add_argument("--control-port", type=int, default=None,
                   help="JSON-lines control channel on loopback (0 = a free port; None: off)")
    p.add_argument("-v", "--verbose", action="store_true", help="DEBUG logs on stderr")
    return p


def build_specs(args) -> list[MeterSpec]:
    specs: list[MeterSpec] = []
    common = dict(auth=args.auth, password=args.password, delay=args.delay, security_suite=args.suite,
                  security_policy=args.policy, profile_days=args.profile_days, reject_range=args.reject_range)
    if args.client_address is not None:
        common["client_address"] = args.client_address
    if args.block_cipher_key:
        common["block_cipher_key"] = args.block_cipher_key
    if args.authentication_key:
        common["authentication_key"] = args.authentication_key
    for i in range(args.meters):
        port = args.base_port + i if args.base_port else 0
        seed = None if args.seed is None else args.seed + i
        specs.append(MeterSpec(f"meter-{i + 1}", interface=args.interface, port=port, seed=seed, **common))
    if args.hdlc_shared_port is not None:
        for i in range(args.hdlc_meters):
            seed = None if args.seed is None else args.seed + 1000 + i
            specs.append(MeterSpec(
                f"bus-{i + 1}", interface="hdlc", hdlc_group="bus", port=args.hdlc_shared_port,
                logical_address=1, physical_address=17 + i, address_size=4, seed=seed, **common,
            ))
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            cfg = json.load(fh)
        specs.extend(MeterSpec.from_dict(m) for m in cfg.get("meters", []))
    return specs


def format_row(row: dict) -> str:
    phys = "-" if row["physical"] is None else row["physical"]
    client = "16" + (f",{row['client']}" if row["client"] not in (None, 16) else "")
    return (f"{row['name']:<12} {row['interface']:<7} {row['host']}:{row['port']:<6} "
            f"server={row['server_address']} (logical {row['logical']}, physical {phys}) "
            f"clients={client} auth={row['auth']} serial={row['serial']}")


async def _run(sim: Simulator) -> None:
    await sim.start_async()
    for row in sim.describe():
        print(format_row(row))
    if sim.control_port is not None:
        print(f"control {sim.host if sim.host != '0.0.0.0' else '127.0.0.1'}:{sim.control_port}")
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sim.stop)
    await sim.serve()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        specs = build_specs(args)
        sim = Simulator(specs, host=args.host, control_port=args.control_port)
    except (ValueError, OSError, KeyError) as exc:
        print(f"dlms-simulator: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run(sim))
    except OSError as exc:
        print(f"dlms-simulator: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
