"""Bridge between a connector config (``dlms_connector.json``) and the meter simulator.

* :func:`simulator_specs` - one ``MeterSpec`` dict per configured device, so the simulated meters
  answer exactly what the connector will ask (interface, addresses, authentication, password).
* :func:`with_free_ports` - a copy of the connector config with every distinct host:port replaced by
  a free loopback port (the demo and tests must not depend on 4059/3333 being free).

CLI (used by ``start_gateway.sh --demo``)::

    python -m tb_dlms.devtools.meters CONNECTOR_JSON --out-connector OUT.json --out-simulator SIM.json
"""
from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

from .mosquitto import free_port

_ENV = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
DEFAULT_PORTS = {"wrapper": 4059, "hdlc": 3333}


def _secret(value):
    if isinstance(value, str):
        match = _ENV.match(value)
        if match:
            return os.environ.get(match.group(1), "")
    return value


def _endpoint(conn: dict) -> tuple[str, int]:
    interface = str(conn.get("interface", "wrapper")).lower()
    return conn.get("host", "127.0.0.1"), int(conn.get("port") or DEFAULT_PORTS.get(interface, 4059))


def simulator_specs(connector_config: dict) -> list[dict]:
    """``MeterSpec`` keyword dicts (``{"meters": [...]}`` for ``python -m tb_dlms.simulator --config``)."""
    devices = connector_config.get("devices", [])
    hdlc_endpoints: dict[tuple[str, int], int] = {}
    for dev in devices:
        conn = dev.get("connection", {})
        if str(conn.get("interface", "wrapper")).lower() == "hdlc":
            hdlc_endpoints[_endpoint(conn)] = hdlc_endpoints.get(_endpoint(conn), 0) + 1
    specs = []
    for dev in devices:
        conn = dev.get("connection", {})
        interface = str(conn.get("interface", "wrapper")).lower()
        auth = str(conn.get("authentication", "none")).lower()
        host, port = _endpoint(conn)
        server = conn.get("serverAddress", {}) or {}
        spec: dict = {"name": dev["deviceName"], "interface": interface, "port": port, "auth": auth,
                      "logical_address": int(server.get("logical", 1))}
        if server.get("physical") is not None:
            spec["physical_address"] = int(server["physical"])
        if server.get("size"):
            spec["address_size"] = int(server["size"])
        if interface == "hdlc" and hdlc_endpoints.get((host, port), 0) > 1:
            spec["hdlc_group"] = f"{host}:{port}"
        client = conn.get("clientAddress")
        if auth != "none" and client is not None:
            spec["client_address"] = int(client)
        if auth in ("low", "high", "high_md5", "high_sha1", "high_sha256") and conn.get("password") is not None:
            spec["password"] = str(_secret(conn["password"]))
        security = conn.get("security") or {}
        if security.get("suite") in (1, 2):
            spec["security_suite"] = security["suite"]
        if security.get("policy"):
            spec["security_policy"] = security["policy"]
        if security.get("blockCipherKey"):
            spec["block_cipher_key"] = _secret(security["blockCipherKey"])
        if security.get("authenticationKey"):
            spec["authentication_key"] = _secret(security["authenticationKey"])
        hdlc = conn.get("hdlc") or {}
        if hdlc.get("maxInfoField"):
            spec["max_info"] = int(hdlc["maxInfoField"])
        if hdlc.get("windowSize"):
            spec["max_window"] = int(hdlc["windowSize"])
        specs.append(spec)
    return specs


def with_free_ports(connector_config: dict, host: str = "127.0.0.1") -> dict:
    """Copy of the config with each distinct endpoint moved to a free port on ``host``."""
    config = copy.deepcopy(connector_config)
    mapping: dict[tuple[str, int], int] = {}
    for dev in config.get("devices", []):
        conn = dev.setdefault("connection", {})
        key = _endpoint(conn)
        if key not in mapping:
            mapping[key] = free_port(host)
        conn["host"] = host
        conn["port"] = mapping[key]
    return config


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Simulator meters matching a dlms_connector.json")
    parser.add_argument("connector_json")
    parser.add_argument("--out-connector", help="write the connector config (with free ports) here")
    parser.add_argument("--out-simulator", required=True, help="write {\"meters\": [...]} for the simulator")
    parser.add_argument("--keep-ports", action="store_true", help="keep the configured ports")
    args = parser.parse_args(argv)
    config = json.loads(Path(args.connector_json).read_text())
    if not args.keep_ports:
        config = with_free_ports(config)
    if args.out_connector:
        Path(args.out_connector).write_text(json.dumps(config, indent=2))
    Path(args.out_simulator).write_text(json.dumps({"meters": simulator_specs(config)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
