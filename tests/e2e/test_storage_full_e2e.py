"""A full disk under the gateway's file storage: simulator -> real gateway -> Mosquitto -> fake ThingsBoard.

The storage directory is a 1 MB tmpfs; the test fills it while the gateway runs. The gateway's
``send_to_storage`` still answers SUCCESS (it only queues), its file storage logs ``[Errno 28]``
and drops the data. The connector must say so once per meter (log, ``lastError``, getStats),
keep the profile intervals captured meanwhile in the meter, and send them once space is back.
Needs root (``mount -t tmpfs``); skipped otherwise.
"""
from __future__ import annotations

import errno
import os
import subprocess
from collections import Counter

import pytest

from e2e_support import stop_gateway
from tb_dlms.devtools.gateway_process import GatewayProcess, wait_until
from tb_dlms.simulator import MeterSpec, Simulator
from tb_dlms.simulator.objects import CAPTURE_PERIOD

LOAD = "1.0.99.1.0.255"
F = "Meter F"
WARNING = "the gateway's storage refuses data"


@pytest.fixture(scope="module")
def simulator():
    sim = Simulator([MeterSpec(F, profile_days=1)]).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gateway-full-disk")
    data = workdir / "data"
    data.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(data)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the storage (needs root): {done.stderr.strip()}")
    yield workdir
    subprocess.run(["umount", "-l", str(data)], check=False)


@pytest.fixture(scope="module")
def gateway(broker, fake_tb, simulator, small_disk):
    config = {"name": "DLMS Connector", "id": "e2e-full-disk", "logLevel": "INFO",
              "defaults": {"timeoutMs": 1000, "retries": 1, "connectTimeoutMs": 1000},
              "devices": [{"deviceName": F, "deviceType": "dlms-meter", "pollPeriod": 1,
                           "connection": {"host": "127.0.0.1", "port": simulator.port_of(F)},
                           "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}],
                           "profiles": [{"obis": LOAD, "columns": {"1.0.1.8.0.255": "energyImport"},
                                         "readEvery": 1}]}]}
    gw = GatewayProcess(broker.port, connector_config=config, workdir=small_disk).start()
    yield gw
    if gw.running:
        stop_gateway(gw)


def held(sim) -> set[int]:
    meter = sim.meter(F)
    last = int(meter.now() // CAPTURE_PERIOD * CAPTURE_PERIOD)
    return {t * 1000 for t in range(int(meter.profile_first), last + 1, CAPTURE_PERIOD)}


def intervals(fake_tb) -> list[int]:
    return [p.ts for p in fake_tb.telemetry_of(F) if "energyImport" in p.values]


def fill(path) -> None:
    """Down to the last byte: a small record must not fit in what a large write left over."""
    with open(path, "wb", buffering=0) as out:
        chunk = 65536
        while chunk:
            try:
                out.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                chunk //= 2


def test_full_disk_is_reported_once_and_profile_intervals_come_after(gateway, fake_tb, simulator):
    fake_tb.wait_for(lambda: held(simulator) <= set(intervals(fake_tb)), 60, f"every interval of {F}")
    filler = gateway.data_dir / "filler"
    fill(filler)
    simulator.advance_clock(F, 4 * CAPTURE_PERIOD)  # captured while the disk is full
    during = held(simulator) - set(intervals(fake_tb))
    assert len(during) == 4

    def stats():
        return fake_tb.connector_rpc("dlms_getStats", {"device": F}, timeout=20)["meters"][F]

    wait_until(lambda: WARNING in gateway.log_text("dlms_connector_connector") and stats()["storageRefusals"] > 0,
               60, "the connector noticing the full disk")
    report = stats()
    assert "Errno 28" in report["storageError"] or "No space" in report["storageError"], report
    assert report["lastError"].startswith("gateway storage refuses data"), report

    os.unlink(filler)  # space again: what the meter captured meanwhile arrives, from the meter
    fake_tb.wait_for(lambda: during <= set(intervals(fake_tb)), 60, "the intervals captured while the disk was full")
    wait_until(lambda: stats()["storageError"] is None, 30, "the connector seeing the storage take data")
    log = gateway.log_text("dlms_connector_connector")
    assert log.count(WARNING) == 1, "said once per meter and episode"
    assert "takes data again" in log
    counts = Counter(intervals(fake_tb))
    assert all(counts[t] == 1 for t in during), counts
    # ThingsBoard learns of the gap once the storage takes data again.
    fake_tb.wait_for(lambda: "refused data from" in str(fake_tb.latest(F).attributes.get("lastError")), 30,
                     "lastError naming the refusal")
