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
from pathlib import Path
from typing import Any

from ..config import load_connector_config
from ..protocol.settings import Authentication, Interface, MeterSettings, default_port
from .mosquitto import free_port


def _endpoint(conn: dict) -> tuple[str, int]:
    """host:port of a raw ``connection`` (with_free_ports rewrites the raw JSON, valid or not)."""
    return conn.get("host", "127.0.0.1"), int(conn.get("port") or default_port(str(conn.get("interface", "wrapper"))))


def _spec(name: str, c: MeterSettings, shared_hdlc: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "interface": c.interface.value, "port": c.port,
                            "auth": c.authentication.value, "logical_address": c.logical_address}
    if c.physical_address is not None:
        spec["physical_address"] = c.physical_address
    if c.address_size:
        spec["address_size"] = c.address_size
    if shared_hdlc:
        spec["hdlc_group"] = f"{c.host}:{c.port}"
    if c.authentication is not Authentication.NONE:
        spec["client_address"] = c.client_address
    if c.authentication.uses_secret and c.password is not None:
        spec["password"] = bytes(c.password).decode("utf-8")
    if c.security is not None:
        if c.security.suite in (1, 2):
            spec["security_suite"] = c.security.suite
        spec["security_policy"] = c.security.policy.value
        if c.security.block_cipher_key is not None:
            spec["block_cipher_key"] = bytes(c.security.block_cipher_key).hex()
        if c.security.authentication_key is not None:
            spec["authentication_key"] = bytes(c.security.authentication_key).hex()
    if c.interface is Interface.HDLC:
        spec["max_info"] = c.hdlc_max_info
        spec["max_window"] = c.hdlc_window
    return spec


def simulator_specs(connector_config: dict) -> list[dict]:
    """``MeterSpec`` keyword dicts (``{"meters": [...]}`` for ``python -m tb_dlms.simulator --config``).

    The connector's own schema reads the file (defaults, ``${VAR}`` secrets, the serial-number
    address rule), so each simulated meter answers what the connector will ask. A device the schema
    refuses is not simulated: the connector does not start it either.
    """
    config, _ = load_connector_config(connector_config)
    connections = [(d.name, d.connection) for d in config.devices]
    per_endpoint: dict[tuple[str, int], int] = {}
    for _, c in connections:
        if c.interface is Interface.HDLC:
            per_endpoint[(c.host, c.port)] = per_endpoint.get((c.host, c.port), 0) + 1
    return [_spec(name, c, c.interface is Interface.HDLC and per_endpoint[(c.host, c.port)] > 1)
            for name, c in connections]


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
