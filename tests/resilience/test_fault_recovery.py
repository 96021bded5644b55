"""Every fault the simulator can throw, through DLMSDevice with real sessions: polls come back.

The same shape for each fault: two good polls, the fault injected for a few polls (which may
fail, but must return: never raise, never outlive their deadline), the fault cleared, and then
a good poll within ``RECOVERY_POLLS`` polls.
"""
from __future__ import annotations

import asyncio
import time
from itertools import pairwise

import pytest
from support import TIMESERIES, make_device, wait_until

from tb_dlms.resilience.breaker import BreakerState
from tb_dlms.simulator.faults import KINDS, Fault
from tb_dlms.simulator.simulator import Simulator
from tb_dlms.simulator.spec import MeterSpec

RECOVERY_POLLS = 2
POLLS_UNDER_FAULT = 3
VARIANTS = {"wrapper": dict(interface="wrapper", auth="none"),
            "hdlc-low": dict(interface="hdlc", auth="low", client_address=32)}


@pytest.fixture(scope="module")
def sim():
    specs = [MeterSpec(f"{kind}-{variant}", **kw) for kind in KINDS for variant, kw in VARIANTS.items()]
    specs += [MeterSpec("mid-assoc", delay=0.15), MeterSpec("breaker"), MeterSpec("stale")]
    with Simulator(specs) as s:
        yield s


def inject(sim: Simulator, name: str, kind: str) -> None:
    if kind == "reboot":
        sim.reboot(name, close=False)  # state gone, link kept: the meter no longer knows our association
    elif kind == "reject_association":
        sim.inject(name, Fault("reject_association"))
        sim.reboot(name, close=True)  # so that the next poll has to associate
    elif kind == "delay":
        sim.inject(name, Fault("delay", seconds=0.4))  # just inside the 500 ms reply timeout
    elif kind == "garbage":
        sim.inject(name, Fault("garbage", before=False))
    elif kind in ("huge_value", "endless_blocks", "malformed_value"):
        # A hostile value of one register the device reads (block transfer on WRAPPER and HDLC).
        sim.inject(name, Fault(kind, obis=TIMESERIES[0]["obis"], size=200_000))
    else:
        sim.inject(name, Fault(kind))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", KINDS)
def test_polls_recover_after_fault(sim, kind, variant):
    if kind == "endless_blocks" and variant != "wrapper":
        pytest.skip("the simulator serves endless_blocks on WRAPPER only (HDLC segments are its own framing)")
    name = f"{kind}-{variant}"
    device = make_device(sim, name)

    async def scenario():
        assert await device.poll() and await device.poll()
        inject(sim, name, kind)
        for _ in range(POLLS_UNDER_FAULT):
            started = time.monotonic()
            await device.poll()  # must return, good or bad
            assert time.monotonic() - started <= device.config.poll_timeout_s + 1
        sim.clear(name)
        outcomes = [await device.poll() for _ in range(RECOVERY_POLLS)]
        await device.close()
        return outcomes

    outcomes = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert any(outcomes), (kind, variant, device.report())
    report = device.report()
    assert report["pollsOk"] >= 3
    if kind not in ("delay", "reboot"):
        assert report["pollsFailed"] >= 1, report  # the fault did bite


def test_reboot_during_association(sim):
    """The meter loses its state while our AARQ is on the wire; the next poll associates afresh."""
    device = make_device(sim, "mid-assoc")

    async def scenario():
        poll = asyncio.create_task(device.poll())
        await wait_until(lambda: sim.meter("mid-assoc").requests >= 1, 5, "the AARQ")
        sim.reboot("mid-assoc", close=False)
        await poll
        outcomes = [await device.poll() for _ in range(RECOVERY_POLLS)]
        await device.close()
        return outcomes

    assert any(asyncio.run(scenario())), device.report()


def test_breaker_opens_on_a_dead_meter_and_closes_after_it_returns(sim):
    """Through ``run()``: no polls while open (skipped slots), one transition logged each way."""
    sent: list = []
    device = make_device(sim, "breaker", sent, pollPeriod=0.2, pollTimeoutMs=1500,
                         breaker={"failureThreshold": 2, "cooldownS": 0.5, "maxCooldownS": 1})

    async def scenario():
        runner = asyncio.create_task(device.run())
        try:
            await wait_until(lambda: device.stats.polls_ok >= 2, 10, "good polls")
            sim.inject("breaker", Fault("blackhole"))
            await wait_until(lambda: device.breaker.state is BreakerState.OPEN, 15, "breaker open")
            requests = sim.meter("breaker").requests
            await wait_until(lambda: device.breaker.skipped >= 2, 5, "skipped slots")
            assert sim.meter("breaker").requests - requests <= 2  # at most one probe's worth
            sim.clear("breaker")
            await wait_until(lambda: device.breaker.state is BreakerState.CLOSED, 15, "breaker closed")
            ok = device.stats.polls_ok
            await wait_until(lambda: device.stats.polls_ok >= ok + 2, 5, "polls after recovery")
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await device.close()

    asyncio.run(scenario())
    report = device.report()
    assert report["breaker"]["opens"] >= 1 and report["breaker"]["state"] == "closed"
    assert report["breaker"]["skippedPolls"] >= 2
    states = [d.attributes.to_dict()["breakerState"] for d in sent if "breakerState" in d.attributes.to_dict()]
    assert states[0] == "closed" and "open" in states and states[-1] == "closed"
    assert all(a != b for a, b in pairwise(states)), states  # sent on change only


def test_breaker_transitions_logged_once_not_per_failed_poll(sim, caplog):
    device = make_device(sim, "breaker", pollPeriod=0.1, pollTimeoutMs=1500,
                         breaker={"failureThreshold": 1, "cooldownS": 60, "maxCooldownS": 60})
    sim.inject("breaker", Fault("no_reply"))

    async def scenario():
        runner = asyncio.create_task(device.run())
        await wait_until(lambda: device.breaker.skipped >= 10, 15, "skipped slots")
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await device.close()

    try:
        with caplog.at_level("INFO", logger="test.dlms.resilience"):
            asyncio.run(scenario())
    finally:
        sim.clear("breaker")
    opened = [r for r in caplog.records if "circuit breaker open" in r.getMessage()]
    assert len(opened) == 1
    assert len([r for r in caplog.records if "poll failed" in r.getMessage()]) == 1


def test_stale_meter_is_reconnected(sim):
    """Polls that 'succeed' with nothing usable (every attribute refused) still end in a reconnect."""
    device = make_device(sim, "stale", pollPeriod=0.1, staleAfterS=0.5,
                         timeseries=[{"key": "nothing", "obis": "1.0.99.99.0.255"}])

    async def scenario():
        runner = asyncio.create_task(device.run())
        await wait_until(lambda: device.stale.reconnects >= 2, 10, "stale reconnects")
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await device.close()

    asyncio.run(scenario())
    report = device.report()
    assert report["staleReconnects"] >= 2 and report["associations"] >= 2, report
