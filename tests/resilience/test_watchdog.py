"""Deadlines from outside: a poll that ignores its cancellation, a polling loop that stops running."""
from __future__ import annotations

import asyncio
import logging
import threading
import time

import support  # noqa: F401 - puts tests/gateway on the path
from gateway_fakes import FakeFleet, FakeGateway

from tb_dlms.gateway.connector import DLMSConnector
from tb_dlms.resilience.watchdog import Heartbeat, LoopWatchdog, guard_task

LOG = logging.getLogger("test.dlms.watchdog")


def test_guard_task_gives_up_on_a_task_that_ignores_cancellation():
    ignore = [True]

    async def stubborn():
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if not ignore[0]:
                    raise
                # the bug we guard against: cancellation swallowed

    async def go():
        task = asyncio.create_task(stubborn())
        started = time.monotonic()
        in_time = await guard_task(task, 0.1, grace_s=0.1)
        elapsed = time.monotonic() - started
        assert not task.done()
        ignore[0] = False
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return in_time, elapsed

    in_time, elapsed = asyncio.run(go())
    assert in_time is False and elapsed < 1.0


def test_guard_task_passes_a_task_that_finishes():
    async def go():
        return await guard_task(asyncio.create_task(asyncio.sleep(0.01)), 1.0)

    assert asyncio.run(go()) is True


def test_watchdog_calls_on_stall_once_per_stall():
    now = [0.0]
    hb = Heartbeat(clock=lambda: now[0])
    stalls = []
    dog = LoopWatchdog("t", lambda: hb, 5.0, stalls.append, LOG)
    assert not dog.check()
    now[0] = 6.0
    assert dog.check() and stalls == [6.0]
    hb_new = Heartbeat(clock=lambda: now[0])  # what a restart installs
    dog._heartbeat = lambda: hb_new
    assert not dog.check()
    hb_new.beat()
    now[0] = 8.0
    assert not dog.check() and dog.stalls == 1


class BlockingFleet(FakeFleet):
    """'Blocker' blocks the whole event loop once with a synchronous sleep (a library bug)."""

    def __init__(self, block_s: float, **scripts) -> None:
        super().__init__(**scripts)
        self.block_s = block_s
        self.blocked = threading.Event()
        self.released = threading.Event()

    def __call__(self, settings):
        session = super().__call__(settings)
        if settings.name == "Blocker":
            read = session.read

            async def blocking_read(refs):
                if not self.blocked.is_set():
                    self.blocked.set()
                    time.sleep(self.block_s)  # noqa: ASYNC101 - on purpose: the loop stops running
                    self.released.set()
                return await read(refs)

            session.read = blocking_read
        return session


def test_stuck_loop_is_detected_logged_and_replaced_without_restarting_the_gateway(caplog):
    gateway = FakeGateway()
    fleet = BlockingFleet(block_s=6.0)
    devices = [{"deviceName": n, "pollPeriod": 0.1, "connection": {"host": "127.0.0.1", "port": p},
                "timeseries": [{"key": "v", "obis": "1.0.32.7.0.255"}]} for n, p in (("Blocker", 4059),
                                                                                       ("Healthy", 4060))]
    connector = DLMSConnector(gateway, {"name": "DLMS WD", "loopStallS": 1.0, "devices": devices}, "dlms",
                              session_factory=fleet)
    with caplog.at_level("ERROR"):
        connector.open()
        try:
            assert fleet.blocked.wait(10)
            assert gateway.wait_for(lambda: connector.loop_restarts >= 1, 5)
            before = len(gateway.telemetry("Healthy"))
            # The old loop is still blocked, yet the new one polls both meters.
            assert gateway.wait_for(lambda: len(gateway.telemetry("Healthy")) >= before + 5, 4)
            assert not fleet.released.is_set()
            assert connector.is_connected()
            reply = connector.server_side_rpc_handler({"method": "dlms_getStats", "params": {}, "id": "1"})
            assert reply["count"] == 2
            assert fleet.released.wait(10)
        finally:
            connector.close()
    stalls = [r for r in caplog.records if "polling loop has not run" in r.getMessage()]
    assert len(stalls) == 1 and connector.loop_restarts == 1
