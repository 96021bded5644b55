"""The simulator leaves no task behind: not on stop, not when a client hangs up mid-reply.

A connection closed while its request is being answered (a reply delayed by the meter, or waiting
for a shared bus) used to leave its ``AcceptedConnection._drain`` task pending; ``stop()`` closed
the loop under it and the garbage collector later logged "Task was destroyed but it is pending!"
into whichever test ran next (issue 11, item 10: test_bad_input[poll period wrong type] failed now and then).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time

from gurux_dlms import GXDLMSClient
from gurux_dlms.enums import Authentication, InterfaceType

from tb_dlms.simulator import MeterSpec, Simulator

#: Long enough that no reply is ever written while the test runs: the tasks are mid-drain.
SLOW_S = 60.0
SPECS = [
    MeterSpec("slow-w", delay=SLOW_S),
    # A shared bus: the slow meter holds it while answering, its neighbour's reply waits for it.
    MeterSpec("slow-h", interface="hdlc", hdlc_group="bus", delay=SLOW_S),
    MeterSpec("next-h", interface="hdlc", hdlc_group="bus", logical_address=2),
]


def _first_request(sim: Simulator, name: str) -> bytes:
    spec = sim.meter(name).spec
    if spec.interface == "hdlc":
        return bytes(GXDLMSClient(True, 16, spec.server_address, Authentication.NONE, None,
                                  InterfaceType.HDLC).snrmRequest())
    return bytes(GXDLMSClient(True, 16, spec.server_address, Authentication.NONE, None,
                              InterfaceType.WRAPPER).aarqRequest()[0])


def _wait(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _hang_up_mid_reply(sim: Simulator) -> None:
    """Send each meter a request, wait until the simulator is busy with all of them, hang up."""
    socks = []
    for name in ("slow-w", "slow-h", "next-h"):
        sock = socket.create_connection(("127.0.0.1", sim.port_of(name)), timeout=5)
        sock.sendall(_first_request(sim, name))
        socks.append(sock)
        _wait(lambda name=name: sim.stats(name)["requests"] >= 1, f"{name} to receive its request")
    for sock in socks:
        sock.close()
    _wait(lambda: all(not p.links for p in sim.ports), "the simulator to see the connections closed")


def test_no_task_destroyed_pending_after_a_client_hangs_up_mid_reply(caplog):
    sim = Simulator(SPECS).start()
    try:
        _hang_up_mid_reply(sim)
    finally:
        sim.stop()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()
    destroyed = [r.getMessage() for r in caplog.records if "Task was destroyed" in r.getMessage()]
    assert destroyed == []


def test_stop_async_cancels_and_awaits_every_task_it_started():
    async def scenario() -> list[str]:
        sim = Simulator(SPECS)
        await sim.start_async()
        await asyncio.to_thread(_hang_up_mid_reply, sim)
        await sim.stop_async()
        return [repr(t) for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    assert asyncio.run(scenario()) == []


def test_a_closed_connection_ends_its_reply_task():
    async def scenario() -> list[str]:
        sim = Simulator(SPECS)
        await sim.start_async()
        try:
            await asyncio.to_thread(_hang_up_mid_reply, sim)
            # The connection is gone: nothing can answer it, so nothing may wait for the bus on its behalf.
            deadline = time.monotonic() + 10
            while (left := [t for t in asyncio.all_tasks() if "_drain" in repr(t)]) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return [repr(t) for t in left]
        finally:
            await sim.stop_async()

    assert asyncio.run(scenario()) == []
