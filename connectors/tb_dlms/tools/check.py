"""``test_config.py`` / ``python -m tb_dlms.tools.check``: check a config dir and its meters before a deploy.

Exit codes (also in docs/operations.md):
  0  configuration valid and every meter answered every mapped point
  1  configuration invalid (gateway file or a connector file); valid meters are still probed
  2  at least one meter could not be reached or associated (see its diagnosis)
  3  every meter associated, but some mapped points could not be read
  4  ThingsBoard side: unreachable, token refused, or the broker does not answer like ThingsBoard
  64 usage error (bad command line)
  69 (test_config.py only) no Python environment with the gateway's packages could be set up
Precedence: 1, then 4, then 2, then 3.
With --discover: 0 entry printed, 2 meter failed, 64 usage.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import IO, NoReturn

from .. import __version__
from ..launcher import config as launcher_config
from ..protocol.settings import Authentication, SecurityPolicy
from .configcheck import ConnectorCheck, GatewayCheck, check_connector, check_gateway, service_user_errors
from .platform_check import PlatformCheck, check_platform
from .probe import MeterResult, probe_all
from .render import Painter, table, want_colour

EXIT_OK, EXIT_CONFIG, EXIT_METER, EXIT_POINTS, EXIT_PLATFORM, EXIT_USAGE = 0, 1, 2, 3, 4, 64
#: Same as --no-platform (CI and tests without a broker).
NO_PLATFORM_ENV = "TB_DLMS_NO_PLATFORM_CHECK"
STATUS_STYLE = {"ok": "green", "partial": "yellow", "failed": "red"}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's 2 would read as "a meter failed"
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(prog: str = "test_config.py") -> argparse.ArgumentParser:
    p = Parser(prog=prog, description="Validate the gateway and DLMS connector config, then probe every meter.",
               epilog="Exit codes: 0 all fine, 1 config invalid, 2 a meter failed, 3 some points unreadable, "
                      "4 ThingsBoard unreachable/token refused/not ThingsBoard, 64 usage. See docs/operations.md.",
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s (tb-dlms {__version__})")
    p.add_argument("--config-dir", help="config folder (default: $TB_DLMS_CONFIG_DIR, else ./config)")
    p.add_argument("--connector", action="append", metavar="FILE",
                   help="check only this connector file (repeatable); the gateway file is not read")
    p.add_argument("--device", action="append", metavar="NAME", help="probe only this meter (repeatable)")
    p.add_argument("--no-probe", action="store_true", help="validate the files only")
    p.add_argument("--service-user", metavar="USER", help="also check that USER (the service's) can read every file")
    p.add_argument("--no-platform", action="store_true",
                   help=f"do not connect to ThingsBoard (also ${NO_PLATFORM_ENV}=1)")
    p.add_argument("--parallel", type=int, default=8, help="meters probed at once (default 8)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--debug", action="store_true", help="protocol debug log on stderr")
    d = p.add_argument_group("discovery (--discover HOST:PORT or a serial port path prints a devices[] entry)")
    d.add_argument("--discover", metavar="HOST:PORT|/dev/PORT")
    d.add_argument("--baudrate", type=int, default=9600,
                   help="serial port: the line's rate (mode E: the rate to agree)")
    d.add_argument("--mode-e", action="store_true", help="serial port: IEC 62056-21 mode E sign-on (optical probe)")
    d.add_argument("--interface", choices=("wrapper", "hdlc"), default="wrapper")
    d.add_argument("--client", type=int, help="client address (default by --auth: none 16, low 32, HLS 1)")
    d.add_argument("--server-logical", type=int, default=1)
    d.add_argument("--server-physical", type=int, help="HDLC physical address")
    d.add_argument("--server-size", type=int, choices=(1, 2, 4), help="HDLC address size in bytes")
    d.add_argument("--auth", choices=[a.value for a in Authentication], default="none",
                   help="authentication mechanism (connection.authentication)")
    d.add_argument("--password", help='password of low, the HLS secret of high/high_md5/high_sha1/high_sha256 '
                                      '(or "${ENV_VAR}", kept as is in the output)')
    d.add_argument("--system-title", help="high_gmac, high_sha256, high_ecdsa, ciphering: the client's system "
                                          "title, 16 hex digits")
    d.add_argument("--block-cipher-key", help='ciphering, high_gmac: hex (suite 2: 64 digits) or "${ENV_VAR}" '
                                              "(kept as is in the output)")
    d.add_argument("--authentication-key", help='ciphering, high_gmac: hex (suite 2: 64 digits) or "${ENV_VAR}" '
                                                "(kept as is in the output)")
    d.add_argument("--suite", type=int, choices=(0, 1, 2), help="security.suite (high_ecdsa: 1 or 2)")
    d.add_argument("--policy", choices=[p.value for p in SecurityPolicy], help="security.policy")
    d.add_argument("--dedicated-key", action="store_true", help="security.dedicatedKey: general-ded ciphering")
    d.add_argument("--signing-key", help='high_ecdsa: our private key, a PEM file path or "${ENV_VAR}"')
    d.add_argument("--meter-public-key", help='high_ecdsa: the meter\'s public key or certificate, PEM file path '
                                              'or "${ENV_VAR}"')
    d.add_argument("--name", default="Meter 1", help="deviceName of the entry")
    d.add_argument("--device-type", default="dlms-meter")
    d.add_argument("--timeout-ms", type=int, default=5000)
    d.add_argument("--as-connector", action="store_true", help="print a whole connector file, not one entry")
    return p


def main(argv: list[str] | None = None, prog: str = "test_config.py") -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.CRITICAL, stream=sys.stderr)
    if args.discover:
        from .discover_cli import run_discover

        return run_discover(args)
    paint = Painter(want_colour(sys.stdout, args.color) and not args.json)
    gateway, connectors, usage = _load(args)
    if usage:
        print(f"{prog}: {usage}", file=sys.stderr)
        return EXIT_USAGE
    devices = [(c.name, d) for c in connectors if c.config for d in c.config.devices
               if not args.device or d.name in args.device]
    if args.device:
        missing = set(args.device) - {d.name for _, d in devices}
        if missing:
            print(f"{prog}: no such meter in the config: {', '.join(sorted(missing))}", file=sys.stderr)
            return EXIT_USAGE
    platform = None
    if gateway is not None and gateway.config is not None and not gateway.errors and not args.no_probe \
            and not args.no_platform and os.environ.get(NO_PLATFORM_ENV, "") not in ("1", "true", "yes"):
        platform = check_platform(gateway.config)
    results = [] if args.no_probe else asyncio.run(probe_all(devices, args.parallel))
    code = exit_code(gateway, connectors, results, platform)
    if args.json:
        json.dump(report(gateway, connectors, results, code, platform), sys.stdout, indent=2)
        print()
    else:
        write_text(sys.stdout, paint, gateway, connectors, results, code, platform)
    return code


def _load(args) -> tuple[GatewayCheck | None, list[ConnectorCheck], str | None]:
    if args.connector:
        return None, [check_connector(Path(f).name, Path(f)) for f in args.connector], None
    try:
        config_dir = launcher_config.resolve_config_dir(args.config_dir)
    except launcher_config.GatewayConfigError as exc:
        return None, [], str(exc)
    gateway = check_gateway(config_dir)
    if args.service_user:
        files = [f for f in (gateway.file, config_dir / launcher_config.LOGS_NAME) if f]
        files += [p for _, p in gateway.connectors]
        gateway.errors += service_user_errors(config_dir, files, args.service_user)
    return gateway, [check_connector(name, path) for name, path in gateway.connectors], None


def exit_code(gateway: GatewayCheck | None, connectors: list[ConnectorCheck], results: list[MeterResult],
              platform: PlatformCheck | None = None) -> int:
    if (gateway is not None and gateway.errors) or any(c.errors for c in connectors) or not connectors:
        return EXIT_CONFIG
    if platform is not None and not platform.ok:
        return EXIT_PLATFORM
    if any(r.status == "failed" for r in results):
        return EXIT_METER
    if any(r.status == "partial" for r in results):
        return EXIT_POINTS
    return EXIT_OK


def report(gateway, connectors, results, code, platform=None) -> dict:
    return {
        "ok": code == EXIT_OK, "exitCode": code,
        "gatewayConfig": gateway.as_dict() if gateway else None,
        "thingsboard": platform.as_dict() if platform else None,
        "connectors": [c.as_dict() for c in connectors],
        "meters": [r.as_dict() for r in results],
        "summary": {s: sum(1 for r in results if r.status == s) for s in ("ok", "partial", "failed")},
    }


def write_text(out: IO, paint: Painter, gateway, connectors, results, code, platform=None) -> None:
    def say(text: str = "") -> None:
        print(text, file=out)

    if gateway is not None:
        note = " (YAML wins over tb_gateway.json)" if gateway.file and gateway.file.suffix == ".yaml" else ""
        say(f"Gateway config {gateway.file}{note}: " + _verdict(paint, not gateway.errors))
        for e in gateway.errors:
            say(paint(f"  error: {e}", "red"))
        for w in gateway.warnings:
            say(paint(f"  warning: {w}", "yellow"))
    if platform is not None:
        verdict = {"thingsboard": paint("OK", "green"), "skipped": paint("not checked", "yellow")}.get(
            platform.status, paint(platform.status.upper().replace("_", " "), "red", "bold"))
        say(f"ThingsBoard {platform.endpoint}: {verdict}")
        say(paint(f"  {platform.message}", *(() if platform.ok else ("red",))))
    for c in connectors:
        count = len(c.config.devices) if c.config else 0
        say(f'Connector "{c.name}" {c.file}: ' + _verdict(paint, not c.errors) + f", {count} valid meter(s)")
        for e in c.errors:
            say(paint(f"  error: {e}", "red"))
    for r in results:
        say()
        _write_meter(say, paint, r)
    say()
    if not results and any(c.config and c.config.devices for c in connectors):
        say(paint(f"meters not probed (--no-probe); exit code {code}", "bold"))
        return
    summary = report(gateway, connectors, results, code, platform)["summary"]
    say(paint(f"{len(results)} meter(s): {summary['ok']} ok, {summary['partial']} partial, "
              f"{summary['failed']} failed; exit code {code}", "bold"))


def _verdict(paint: Painter, ok: bool) -> str:
    return paint("valid", "green") if ok else paint("INVALID", "red", "bold")


def _write_meter(say, paint: Painter, r: MeterResult) -> None:
    d = r.as_dict()
    status = {"ok": "OK", "partial": "PARTIAL", "failed": "FAILED"}[r.status]
    say(paint(d["device"], "bold") + f"  {d['endpoint']} {d['interface']}, {d['addresses']}, "
        f"auth {d['authentication']}  " + paint(status, STATUS_STYLE[r.status], "bold"))
    if r.diagnosis is not None:
        say(paint(f"  {r.diagnosis.cause}", "red"))
        say(f"  diagnosis: {r.diagnosis.hint}")
    if r.points:
        rows = [[p.point.key, str(p.point.ref.obis), p.value if p.error is None else None, p.unit, p.scaler,
                 "ok" if p.error is None else p.error] for p in r.points]
        styles = [None if p.error is None else "yellow" for p in r.points]
        for line in table(["key", "OBIS", "value", "unit", "scaler", "status"], rows, paint, styles):
            say(line)
    rtt = f" (avg {d['rttMs']} ms)" if d["rttMs"] is not None else ""
    say(paint(f"  {d['roundTrips']} round trip(s){rtt}, connect {_ms(d['connectMs'])}, read {_ms(d['readMs'])}, "
              f"total {_ms(d['elapsedMs'])}, "
              f"{d['bytesSent']} B sent / {d['bytesReceived']} B received, {d['resends']} resend(s)", "dim"))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g} ms"


def test_config_entry() -> int:
    """The ``tb-dlms-test-config`` console script ([project.scripts] in pyproject.toml)."""
    return main(prog="tb-dlms-test-config")


def discover_entry(argv: list[str] | None = None) -> int:
    """``tb-dlms-discover HOST:PORT [options]``: the ``--discover`` path under its own name."""
    args = sys.argv[1:] if argv is None else argv
    if args and not args[0].startswith("-"):
        args = ["--discover", *args]
    return main(args, prog="tb-dlms-discover")


if __name__ == "__main__":
    sys.exit(main(prog="python -m tb_dlms.tools.check"))
