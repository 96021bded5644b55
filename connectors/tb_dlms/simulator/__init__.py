"""Simulated DLMS/COSEM meters over TCP (WRAPPER and HDLC), built on gurux-dlms's server.

Used by tests, benchmarks and the demo instead of real meters; see simulator.py for the API and
__main__.py for the CLI. gurux-dlms is GPL-2.0; so is this package by linkage.
"""
from .faults import KINDS as FAULT_KINDS, Fault
from .meter import Meter
from .simulator import Simulator
from .spec import MeterSpec

__all__ = ["Simulator", "MeterSpec", "Fault", "FAULT_KINDS", "Meter"]
