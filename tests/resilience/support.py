"""Shared by the resilience tests (imported as a plain module: tests/ has no packages)."""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

from tb_dlms.config import load_connector_config_strict
from tb_dlms.devtools.sim_devices import device_for
from tb_dlms.gateway.device import DLMSDevice
from tb_dlms.gateway.sessions import meter_session_factory
from tb_dlms.simulator.simulator import Simulator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "gateway"))  # gateway_fakes
sys.path.insert(0, str(HERE.parents[1] / "bench"))  # soak

LOG = logging.getLogger("test.dlms.resilience")
PASSWORD = "12345678"
TIMESERIES = [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}, {"key": "energyImport", "obis": "1.0.1.8.0.255"},
              {"key": "frequency", "obis": "1.0.14.7.0.255"}]


def device_dict(sim: Simulator, name: str, **extra) -> dict:
    """A connector device entry that reaches simulated meter ``name`` as its spec says (short timeouts)."""
    connection = {"timeoutMs": 500, "retries": 1, "connectTimeoutMs": 1000, **extra.pop("connection", {})}
    timeseries = extra.pop("timeseries", TIMESERIES)
    return device_for(sim, name, timeseries, connection=connection,
                      **{"pollPeriod": 1, "pollTimeoutMs": 3000, **extra})


def make_device(sim: Simulator, name: str, sent: list | None = None, **extra) -> DLMSDevice:
    cfg = load_connector_config_strict({"devices": [device_dict(sim, name, **extra)]}).devices[0]
    return DLMSDevice(cfg, meter_session_factory(), (sent if sent is not None else []).append, LOG,
                      close_bound_s=0.5)


async def wait_until(predicate, timeout: float, what: str = "condition") -> None:
    """Deadline-bounded wait on the loop for a condition (checked every 20 ms)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)
