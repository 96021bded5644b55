"""Shared simulator for the simulator tests: started once per module, real sockets on loopback."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from tb_dlms.simulator import MeterSpec, Simulator  # noqa: E402
from dlms_client import DlmsTestClient  # noqa: E402

SPECS = [
    MeterSpec("w-none"),
    MeterSpec("w-low", auth="low"),
    MeterSpec("w-gmac", auth="high_gmac"),
    MeterSpec("h-none", interface="hdlc"),
    MeterSpec("h-low", interface="hdlc", auth="low", client_address=1),
    MeterSpec("h-gmac", interface="hdlc", auth="high_gmac", client_address=48),
    MeterSpec("bus-a", interface="hdlc", hdlc_group="bus"),
    MeterSpec("bus-b", interface="hdlc", hdlc_group="bus", physical_address=17, address_size=4),
    MeterSpec("bus-c", interface="hdlc", hdlc_group="bus", address_from_serial=True, auth="low"),
    MeterSpec("norange", reject_range=True),
    MeterSpec("faulty"),
    MeterSpec("faulty-h", interface="hdlc"),
]


@pytest.fixture(scope="package")
def sim():
    s = Simulator(SPECS).start()
    yield s
    s.stop()


def client_for(sim, name: str, *, public: bool = False, timeout: float = 2.0, **kw) -> DlmsTestClient:
    """A client with the right addresses and credentials for meter ``name``."""
    spec = sim.meter(name).spec
    opts = dict(interface=spec.interface, server=spec.server_address, timeout=timeout)
    if spec.interface == "hdlc" and (spec.address_size == 4 or spec.server_address > 0x3FFF):
        opts["server_address_size"] = 4
    if not public and spec.auth != "none":
        opts.update(client=spec.client_address, auth=spec.auth)
        if spec.auth == "low":
            opts["password"] = spec.password
        else:
            opts.update(system_title=b"TESTCLNT", block_cipher_key=spec.block_cipher_key,
                        authentication_key=spec.authentication_key,
                        invocation_counter=sim.meter(name).invocation_counter + 1)
    opts.update(kw)
    return DlmsTestClient(sim.host, sim.port_of(name), **opts)
