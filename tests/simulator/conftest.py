"""Shared simulator for the simulator tests: started once per module, real sockets on loopback."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from tb_dlms.simulator import MeterSpec, Simulator  # noqa: E402

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
