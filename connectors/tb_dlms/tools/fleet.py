"""``python -m tb_dlms.tools.fleet``: a CSV of meters -> validated ``dlms_connector.json`` (or N shards).

Hundreds of meters are kept in a spreadsheet, not hand-written JSON. Each row names a profile
(which OBIS codes to read) instead of listing them, so a fleet stays uniform. With ``--shards N``
the fleet is split across N gateways: a meter's shard comes from a hash of its name (adding a meter
never moves the others), except that meters sharing one host:port (a serial server) are kept
together, keyed by that endpoint: one serial server answers one client at a time, so two gateways
polling it would fight over it.

Exit codes: 0 written, 1 invalid CSV or config (nothing written), 64 usage.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
import uuid
from collections import defaultdict
from pathlib import Path

from ..config import env, load_connector_config
from ..protocol.settings import default_port
from .known_obis import PROFILES, profile_points

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 64
COLUMNS = ("name", "host", "port", "interface", "client", "server_logical", "server_physical", "server_size",
           "serial_number", "auth", "password_env", "profile", "device_type", "poll_period")
REQUIRED = ("name", "host", "profile")
#: Stands in for ``${VAR}`` secrets during validation: the variables live on the gateway, not here.
_PLACEHOLDER = "validation-placeholder"


class FleetError(ValueError):
    pass


def _norm(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, row) with normalised headers; ``#`` lines are comments."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        lines = [(i, line) for i, line in enumerate(fh, 1) if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise FleetError(f"{path}: no rows")
    reader = csv.DictReader([line for _, line in lines])
    headers = [_norm(h) for h in reader.fieldnames or []]
    unknown = [h for h in headers if h not in COLUMNS]
    if unknown:
        raise FleetError(f"{path}: unknown column(s) {', '.join(unknown)}; known: {', '.join(COLUMNS)}")
    missing = [c for c in REQUIRED if c not in headers]
    if missing:
        raise FleetError(f"{path}: missing column(s) {', '.join(missing)}")
    reader.fieldnames = headers
    return [(lines[n + 1][0], {k: (v or "").strip() for k, v in row.items() if k}) for n, row in enumerate(reader)]


def _int(row: dict, key: str, line: int) -> int | None:
    value = row.get(key, "")
    if value == "":
        return None
    if not re.fullmatch(r"\d+", value):
        raise FleetError(f"line {line}: {key} must be a whole number, got {value!r}")
    return int(value)


def device_from_row(line: int, row: dict, profiles: dict) -> dict:
    for key in REQUIRED:
        if not row.get(key):
            raise FleetError(f"line {line}: {key} is empty")
    if row["profile"] not in profiles:
        raise FleetError(f"line {line}: unknown profile {row['profile']!r}; known: {', '.join(profiles)}")
    conn: dict = {"host": row["host"], "interface": (row.get("interface") or "wrapper").lower(),
                  "authentication": (row.get("auth") or "none").lower()}
    for column, key in (("port", "port"), ("client", "clientAddress"), ("serial_number", "serialNumber")):
        value = _int(row, column, line)
        if value is not None:
            conn[key] = value
    server = {k: v for k, v in (("logical", _int(row, "server_logical", line)),
                                ("physical", _int(row, "server_physical", line)),
                                ("size", _int(row, "server_size", line))) if v is not None}
    if server:
        conn["serverAddress"] = {"logical": 1, **server}
    variable = row.get("password_env", "")
    if variable:
        if not env.NAME.fullmatch(variable):
            raise FleetError(f"line {line}: password_env must be an environment variable name, got {variable!r}")
        conn["password"] = "${" + variable + "}"
    timeseries, attributes = profiles[row["profile"]]
    device: dict = {"deviceName": row["name"], "deviceType": row.get("device_type") or "dlms-meter",
                    "connection": conn, "timeseries": timeseries, "attributes": attributes}
    if row.get("poll_period"):
        try:
            device["pollPeriod"] = float(row["poll_period"])
        except ValueError:
            raise FleetError(f"line {line}: poll_period must be a number of seconds") from None
    return device


def load_profiles(extra: Path | None) -> dict:
    profiles = {name: profile_points(name) for name in PROFILES}
    if extra is not None:
        data = json.loads(extra.read_text(encoding="utf-8"))
        for name, spec in data.items():
            profiles[name] = (list(spec.get("timeseries", [])), list(spec.get("attributes", [])))
    return profiles


def validate(connector: dict, lines: list[int]) -> list[str]:
    """Schema errors, naming the CSV line; ``${VAR}`` secrets are checked for shape only."""
    probe = json.loads(json.dumps(connector))
    for device in probe["devices"]:
        if env.reference(device["connection"].get("password")) is not None:
            device["connection"]["password"] = _PLACEHOLDER
    security = probe.get("defaults", {}).get("security")
    if isinstance(security, dict):
        size = 32 if security.get("suite") == 2 else 16
        for key in ("blockCipherKey", "authenticationKey", "masterKey"):
            if env.reference(security.get(key)) is not None:
                security[key] = "00" * size  # the variable is set on the gateway, not here
    _, errors = load_connector_config(probe)
    out = []
    for e in errors:
        where = f"line {lines[e.device_index]} ({e.device}): " if e.device_index is not None else ""
        out.append(where + f"{e.path} {e.message}".strip())
    return out


def endpoint(device: dict) -> str:
    c = device["connection"]
    port = c.get("port", default_port(c.get("interface")))
    return f"{c['host']}:{port}"


def shard_of(key: str, shards: int) -> int:
    """Stable across runs and machines (unlike ``hash()``, which Python salts per process)."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16) % shards


def assign(devices: list[dict], shards: int) -> list[list[dict]]:
    by_endpoint: dict[str, list[dict]] = defaultdict(list)
    for d in devices:
        by_endpoint[endpoint(d)].append(d)
    out: list[list[dict]] = [[] for _ in range(shards)]
    for d in devices:
        shared = len(by_endpoint[endpoint(d)]) > 1 or d["connection"].get("interface") == "hdlc"
        out[shard_of(endpoint(d) if shared else d["deviceName"], shards)].append(d)
    return out


def connector(devices: list[dict], args, shard: int = 0) -> dict:
    """``id`` is set (stable per name and shard) because the gateway otherwise writes one into the
    file at start, and fails to load the connector when the file is read-only for it."""
    cid = uuid.uuid5(uuid.NAMESPACE_URL, f"tb-dlms:{args.connector_name}" + (f":shard-{shard}" if shard else ""))
    return {"name": args.connector_name, "id": str(cid), "logLevel": "INFO", "pollPeriod": args.poll_period,
            "defaults": {"timeoutMs": args.timeout_ms, "retries": args.retries, "connectTimeoutMs": 10000,
                         "inactivityTimeoutS": 180},
            "devices": devices}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tb_dlms.tools.fleet",
                                description="Turn a CSV of meters into dlms_connector.json (or N shards).",
                                epilog="Columns: " + ", ".join(COLUMNS) + ". Profiles: " + ", ".join(PROFILES)
                                + ". Exit codes: 0 written, 1 invalid input, 64 usage.")
    p.add_argument("csv", type=Path, help="meters, one per row (header row required)")
    p.add_argument("--out", type=Path, help="connector file to write (default: print to stdout)")
    p.add_argument("--shards", type=int, default=1, help="split across N gateways: writes OUT_DIR/shard-K/")
    p.add_argument("--out-dir", type=Path, help="with --shards: directory for shard-1/, shard-2/ ...")
    p.add_argument("--profiles", type=Path, help='extra profiles: {"name": {"timeseries": [...], "attributes": [...]}}')
    add_connector_options(p)
    return p


def add_connector_options(p: argparse.ArgumentParser) -> None:
    """What the generated connector file's top level and defaults hold (fleet and migrate tools)."""
    p.add_argument("--connector-name", default="DLMS Connector")
    p.add_argument("--poll-period", type=float, default=30)
    p.add_argument("--timeout-ms", type=int, default=5000)
    p.add_argument("--retries", type=int, default=2)


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Usage errors exit with 64 (EX_USAGE), not argparse's 2, so scripts tell them from bad input."""
    parser.error = lambda message: parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")  # type: ignore
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if args.shards < 1 or (args.shards > 1 and args.out_dir is None):
        parser.error("--shards N needs N >= 1, and --out-dir when N > 1")
    try:
        profiles = load_profiles(args.profiles)
        rows = read_rows(args.csv)
        devices = [device_from_row(line, row, profiles) for line, row in rows]
    except (FleetError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    whole = connector(devices, args)
    errors = validate(whole, [line for line, _ in rows])
    if errors:
        print(f"error: {len(errors)} problem(s), nothing written:", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
        return EXIT_INVALID
    refs = [env.reference(d["connection"].get("password")) for d in devices]
    envs = sorted({ref.name for ref in refs if ref is not None})
    if args.shards == 1:
        _write(whole, args.out)
    else:
        for k, part in enumerate(assign(devices, args.shards), 1):
            if not part:
                # The connector refuses a file without meters; an empty shard means too many shards.
                print(f"warning: shard-{k} got no meters (not written): use fewer shards", file=sys.stderr)
                continue
            target = args.out_dir / f"shard-{k}" / "dlms_connector.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            _write(connector(part, args, k), target)
    if envs:
        print(f"the gateway(s) need these environment variables: {', '.join(envs)}", file=sys.stderr)
    return EXIT_OK


def _write(data: dict, target: Path | None) -> None:
    text = json.dumps(data, indent=2) + "\n"
    if target is None:
        sys.stdout.write(text)
    else:
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target} ({len(data['devices'])} meter(s))", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
