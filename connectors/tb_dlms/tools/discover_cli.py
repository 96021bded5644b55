"""The ``--discover`` command: connection options in, a validated ``devices[]`` entry out.

The options are first turned into a connection object and put through the connector's schema,
so the meter is reached with exactly the settings the printed entry will give the connector.
"""
from __future__ import annotations

import asyncio
import json
import sys

from ..config import load_connector_config
from ..protocol.errors import DlmsError
from ..protocol.session import MeterSession
from .diagnosis import diagnose
from .discover import device_entry, read_object_list

EXIT_OK, EXIT_METER, EXIT_USAGE = 0, 2, 64


def connection_from_args(args) -> dict:
    if args.discover.startswith("/"):  # a serial port on this machine (HDLC, maybe behind a probe)
        serial = {"port": args.discover, "baudrate": getattr(args, "baudrate", 9600)}
        if getattr(args, "mode_e", False):
            serial["modeE"] = True
        conn: dict = {"serial": serial, "interface": "hdlc", "authentication": args.auth}
    else:
        host, _, port = args.discover.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--discover needs HOST:PORT or a serial port path, got {args.discover!r}")
        conn = {"host": host, "port": int(port), "interface": args.interface, "authentication": args.auth}
    if args.client is not None:
        conn["clientAddress"] = args.client
    server: dict = {"logical": args.server_logical}
    if args.server_physical is not None:
        server["physical"] = args.server_physical
    if args.server_size is not None:
        server["size"] = args.server_size
    conn["serverAddress"] = server
    if args.password is not None:
        conn["password"] = args.password
    security = {key: value for key, value in (("systemTitle", args.system_title),
                                               ("blockCipherKey", args.block_cipher_key),
                                               ("authenticationKey", args.authentication_key),
                                               ("suite", args.suite), ("policy", args.policy),
                                               ("signingKey", args.signing_key),
                                               ("meterPublicKey", args.meter_public_key)) if value is not None}
    if args.dedicated_key:
        security["dedicatedKey"] = True
    if security:
        # Checked by the connector's schema below: lengths, hex, "${VAR}" references.
        conn["security"] = security
    conn["timeoutMs"] = args.timeout_ms
    return conn


def run_discover(args) -> int:
    try:
        connection = connection_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    probe = {"devices": [{"deviceName": args.name, "connection": connection,
                          "timeseries": [{"key": "_probe", "obis": "0.0.40.0.0.255", "classId": 15}]}]}
    config, errors = load_connector_config(probe)
    if errors or not config.devices:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    settings = config.devices[0].meter_settings()
    try:
        objects = asyncio.run(_read(settings))
    except (DlmsError, TimeoutError, OSError, ValueError) as exc:
        d = diagnose(exc, settings) if not isinstance(exc, ValueError) else None
        print(f"discovery failed: {exc}", file=sys.stderr)
        if d is not None:
            print(f"diagnosis: {d.hint}", file=sys.stderr)
        return EXIT_METER
    entry = device_entry(args.name, connection, objects, args.device_type)
    out = {"name": "DLMS Connector", "pollPeriod": 30, "devices": [entry]} if args.as_connector else entry
    json.dump(out, sys.stdout, indent=2)
    print()
    print(f"{len(objects)} objects in the association view; {len(entry['timeseries'])} timeseries and "
          f"{len(entry['attributes'])} attributes mapped", file=sys.stderr)
    return EXIT_OK


async def _read(settings):
    session = MeterSession(settings)
    try:
        async with asyncio.timeout(settings.connect_timeout + 4 * (settings.retries + 1) * settings.timeout + 5):
            return await read_object_list(session)
    finally:
        await session.close()
