"""``python -m tb_dlms.tools.migrate``: move meters from a per-meter-token bridge to the gateway, in phases.

The bridges this project replaces publish each meter as its own ThingsBoard device with its own
access token. Their meter list is a CSV of ``name, host, port, token``. Moving a meter means: the
gateway polls it under the *same device name* (ThingsBoard finds the existing device by name, so its
telemetry history continues), and the old bridge stops polling it first.

Two pollers must never read one meter at once: a meter keeps one association at a time and a serial
server serves one TCP client, so the second poller gets silence or a refused association (field
notes). A plan therefore moves whole endpoints: every meter behind one ``host:port`` moves in the
same phase. The tool refuses a plan that would split an endpoint across phases, list one meter
twice, or reuse a device name, and for phase N writes two files from the one plan, so that no meter
can end up in both:

* the connector file with every meter of phases 1..N (what the gateway polls), and
* the rest of the bridge's list, tokens as they were (what the old bridge keeps polling).

Tokens are read only to carry them over to the old bridge's remaining list: they never enter the
connector file (the gateway talks to ThingsBoard with its own token).

Exit codes: 0 written, 1 plan refused or invalid (nothing written), 64 usage.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..protocol.settings import Authentication
from . import fleet
from .known_obis import PROFILES

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 64
#: The old bridge's own columns; ``phase`` is ours; fleet columns may refine a row.
BRIDGE_COLUMNS = ("name", "host", "port", "token")
PLAN_COLUMNS = (*BRIDGE_COLUMNS, "phase", *(c for c in fleet.COLUMNS if c not in BRIDGE_COLUMNS))


class PlanError(ValueError):
    pass


@dataclass(frozen=True)
class Row:
    line: int
    phase: int
    fields: dict

    @property
    def name(self) -> str:
        return self.fields["name"]


def read_plan(path: Path) -> list[Row]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        text = fh.read()
    lines = [(i, line) for i, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if len(lines) < 2:
        raise PlanError(f"{path}: no meters (a header row and one row per meter are needed)")
    reader = csv.DictReader([line for _, line in lines])
    headers = [fleet._norm(h) for h in reader.fieldnames or []]
    unknown = [h for h in headers if h not in PLAN_COLUMNS]
    if unknown:
        raise PlanError(f"{path}: unknown column(s) {', '.join(unknown)}; known: {', '.join(PLAN_COLUMNS)}")
    missing = [c for c in ("name", "host") if c not in headers]
    if missing:
        raise PlanError(f"{path}: missing column(s) {', '.join(missing)}")
    reader.fieldnames = headers
    rows = []
    for n, raw in enumerate(reader):
        line = lines[n + 1][0]
        fields = {k: (v or "").strip() for k, v in raw.items() if k}
        phase_text = fields.pop("phase", "") or "1"
        if not re.fullmatch(r"[1-9]\d*", phase_text):
            raise PlanError(f"line {line}: phase must be a whole number from 1, got {phase_text!r}")
        rows.append(Row(line, int(phase_text), fields))
    return rows


def _device(row: Row, defaults: dict, profiles: dict) -> dict:
    merged = {**defaults, **{k: v for k, v in row.fields.items() if v and k != "token"}}
    return fleet.device_from_row(row.line, merged, profiles)


def _meter_identity(device: dict) -> str:
    """What tells one meter from another on an endpoint: the HDLC server address (WRAPPER: the port)."""
    server = device["connection"].get("serverAddress") or {}
    return f"{fleet.endpoint(device)} logical {server.get('logical', 1)} physical {server.get('physical', '-')}"


def check_plan(rows: list[Row], devices: list[dict]) -> list[str]:
    """Reasons the plan would let two pollers read one meter (or is ambiguous): empty when it is safe."""
    problems = []
    seen_names: dict[str, int] = {}
    seen_meters: dict[str, Row] = {}
    phases_of_endpoint: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for row, device in zip(rows, devices, strict=True):
        if row.name in seen_names:
            problems.append(f"line {row.line}: device name {row.name!r} already used on line {seen_names[row.name]}")
        seen_names.setdefault(row.name, row.line)
        meter = _meter_identity(device)
        if meter in seen_meters:
            other = seen_meters[meter]
            problems.append(f"line {row.line}: {row.name!r} is the same meter as {other.name!r} (line {other.line}): "
                            f"{meter}")
        seen_meters.setdefault(meter, row)
        phases_of_endpoint[fleet.endpoint(device)][row.phase].append(row.name)
    for ep, phases in phases_of_endpoint.items():
        if len(phases) > 1:
            split = "; ".join(f"phase {p}: {', '.join(names)}" for p, names in sorted(phases.items()))
            problems.append(f"{ep} is split across phases ({split}): meters behind one endpoint share one "
                            "connection (a serial server serves one client), so the old and the new poller "
                            "would both use it. Move them in the same phase.")
    return problems


def remaining_csv(rows: list[Row], header: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row.fields, "phase": row.phase})
    return out.getvalue()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tb_dlms.tools.migrate",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Move meters from a per-meter-token bridge (CSV: name,host,port,token) to the gateway "
                    "in phases, keeping ThingsBoard device names.",
        epilog="Plan columns: " + ", ".join(PLAN_COLUMNS) + ". A row without phase is phase 1. Every meter "
               "behind one host:port must be in the same phase. Exit codes: 0 written, 1 refused, 64 usage. "
               "See docs/migration.md.")
    p.add_argument("plan", type=Path, help="the old bridge's meter list, optionally with a phase column")
    p.add_argument("--phase", type=int, default=1, help="write the gateway's config for phases 1..PHASE")
    p.add_argument("--out", type=Path, required=True, help="connector file for the gateway (dlms_connector.json)")
    p.add_argument("--old-bridge-out", type=Path,
                   help="CSV of the meters the old bridge keeps (tokens as in the plan); required while some "
                        "meters stay behind")
    p.add_argument("--profile", default="three_phase_basic", choices=sorted(PROFILES),
                   help="what to read, for rows without a profile column")
    p.add_argument("--interface", default="wrapper", choices=("wrapper", "hdlc"),
                   help="for rows without an interface column")
    p.add_argument("--client", type=int, default=16, help="client address, for rows without a client column")
    p.add_argument("--auth", default="none", choices=[a.value for a in Authentication],
                   help="for rows without an auth column; high_gmac, high_sha256 and high_ecdsa also need --security")
    p.add_argument("--security", type=Path, metavar="JSON",
                   help='file holding the connection.security object every moved meter uses (written as '
                        'defaults.security): {"systemTitle": ..., "suite": ..., "blockCipherKey": "${VAR}", '
                        '"signingKey": "/path/client.pem", ...}')
    p.add_argument("--password-env", default="",
                   help="environment variable holding the meter password, for rows without password_env")
    p.add_argument("--device-type", default="dlms-meter", help="for rows without a device_type column")
    fleet.add_connector_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = fleet.parse_args(parser, argv)
    if args.phase < 1:
        parser.error("--phase must be 1 or more")
    defaults = {"profile": args.profile, "interface": args.interface, "client": str(args.client),
                "auth": args.auth, "password_env": args.password_env, "device_type": args.device_type}
    try:
        rows = read_plan(args.plan)
        profiles = fleet.load_profiles(None)
        devices = [_device(r, defaults, profiles) for r in rows]
    except (PlanError, fleet.FleetError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    problems = check_plan(rows, devices)
    moving = [(r, d) for r, d in zip(rows, devices, strict=True) if r.phase <= args.phase]
    staying = [r for r in rows if r.phase > args.phase]
    if not moving:
        problems.append(f"no meter is in phases 1..{args.phase}")
    if staying and args.old_bridge_out is None:
        problems.append(f"{len(staying)} meter(s) stay with the old bridge after phase {args.phase}: "
                        "give --old-bridge-out for their list")
    whole = fleet.connector([d for _, d in moving], args)
    if args.security is not None:
        try:
            security = json.loads(args.security.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"error: --security {args.security}: {exc}", file=sys.stderr)
            return EXIT_INVALID
        if not isinstance(security, dict):
            print(f"error: --security {args.security} must hold a JSON object", file=sys.stderr)
            return EXIT_INVALID
        whole["defaults"]["security"] = security  # checked with the rest by fleet.validate()
    if moving:
        problems += fleet.validate(whole, [r.line for r, _ in moving])
    if problems:
        print(f"error: plan refused, {len(problems)} problem(s), nothing written:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_INVALID
    fleet._write(whole, args.out)
    if args.old_bridge_out is not None:
        header = [c for c in PLAN_COLUMNS if any(c in r.fields for r in rows) or c == "phase"]
        args.old_bridge_out.write_text(remaining_csv(staying, header), encoding="utf-8")
        print(f"wrote {args.old_bridge_out} ({len(staying)} meter(s) the old bridge keeps)", file=sys.stderr)
    new = [r.name for r, _ in moving if r.phase == args.phase]
    print(f"phase {args.phase}: {len(new)} meter(s) move now, {len(moving)} polled by the gateway in all, "
          f"{len(staying)} stay with the old bridge.", file=sys.stderr)
    print("Stop the old bridge from polling these BEFORE the gateway loads the new file: "
          + ", ".join(new), file=sys.stderr)
    envs = sorted({d["connection"]["password"][2:-1] for _, d in moving if "password" in d["connection"]})
    if envs:
        print(f"the gateway needs these environment variables: {', '.join(envs)}", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
