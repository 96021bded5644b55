"""A connector device entry for a simulated meter, for tests and benchmarks alike.

The meter's ``MeterSpec`` says how it is reached (interface, addresses, authentication, keys); the
entry here says the same to the connector, so a test or a benchmark names only what it measures
(timeouts, poll period, points) and cannot get the addressing of a meter wrong.
"""
from __future__ import annotations

from typing import Any

from ..simulator import MeterSpec, Simulator

#: The system title the connector announces to a High-GMAC simulated meter (any 8 bytes do).
CLIENT_SYSTEM_TITLE = "4d4d4d0000bc614e"
LOOPBACK = "127.0.0.1"


def connection_for(spec: MeterSpec, port: int, host: str = LOOPBACK) -> dict[str, Any]:
    """The ``connection`` section that reaches the meter of ``spec`` listening on ``port``."""
    conn: dict[str, Any] = {"host": host, "port": port, "interface": spec.interface,
                            "authentication": spec.auth, "clientAddress": spec.client_address or 16}
    if spec.interface == "hdlc":
        conn["serverAddress"] = {"logical": spec.logical_address}
        if spec.physical_address is not None:
            conn["serverAddress"].update(physical=spec.physical_address, size=spec.address_size or 2)
    if spec.auth == "low":
        conn["password"] = spec.password
    if spec.auth == "high_gmac":
        conn["security"] = {"systemTitle": CLIENT_SYSTEM_TITLE, "blockCipherKey": spec.block_cipher_key.hex(),
                            "authenticationKey": spec.authentication_key.hex()}
    return conn


def device_for(sim: Simulator, name: str, timeseries: list[dict[str, Any]], *, device_type: str = "sim",
               connection: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A ``devices[]`` entry for simulated meter ``name``; ``connection`` overrides its keys."""
    conn = {**connection_for(sim.meter(name).spec, sim.port_of(name)), **(connection or {})}
    return {"deviceName": name, "deviceType": device_type, "connection": conn, "timeseries": timeseries, **extra}
