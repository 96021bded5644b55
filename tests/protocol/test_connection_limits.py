"""Connection limits over real sockets: dialled TCP links wait fairly for a slot (maxConnections),
and a listener backs off an identity that reconnects in a loop, doubling the back-off."""
from __future__ import annotations

import asyncio
import time

from tb_dlms.protocol.limits import ConnectionLimits
from tb_dlms.protocol.listener import InboundHub
from tb_dlms.protocol.settings import IdentifyBy, ListenerSettings, MeterSettings
from tb_dlms.protocol.transport import LinkPool
from tb_dlms.simulator import MeterSpec
from tb_dlms.simulator.callin import notification
from tb_dlms.simulator.meter import Meter


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_dialled_links_beyond_max_connections_wait_in_arrival_order():
    async def main() -> None:
        accepted: list[int] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer.get_extra_info("peername")[1])
            await reader.read()  # until the link closes
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        limits = ConnectionLimits(max_connections=2)
        pool = LinkPool(limits=limits)
        links = [pool.acquire(MeterSettings("127.0.0.1", port, name=f"m{i}"))[0] for i in range(4)]
        opening = [asyncio.create_task(link.open()) for link in links]
        await _until(lambda: len(accepted) == 2 and limits.queued == 2)
        assert [t.done() for t in opening] == [True, True, False, False]
        await pool.release(links[0], 1)  # a connection closes: the first waiter gets its slot
        await _until(lambda: opening[2].done())
        assert not opening[3].done() and limits.open == 2 and limits.waited == 2
        await pool.release(links[1], 1)
        await asyncio.wait_for(opening[3], 5)
        for link in links[2:]:
            await pool.release(link, 1)
        assert limits.open == 0 and limits.queued == 0
        server.close()

    asyncio.run(main())


def test_a_meter_reconnecting_in_a_loop_is_backed_off_with_a_doubling_backoff():
    spec = MeterSpec("Looper")
    meter = Meter(spec)
    frame = notification(meter, 1, ciphered=True)  # its system title identifies it

    async def main() -> None:
        settings = ListenerSettings("cell", 0, "127.0.0.1", identify_by=IdentifyBy(system_title=True),
                                    reconnect_limit=2, reconnect_window_s=60.0, reconnect_backoff_s=0.3)
        hub = InboundHub([settings])
        link = hub.link_for("cell", spec.system_title.hex(), "Looper")
        await hub.start()
        listener = hub.listeners["cell"]
        port = listener.bound_port

        async def dial() -> None:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(frame)
            await writer.drain()
            await _until(lambda: listener.stats.identified + listener.stats.refused_backoff > done[0])
            done[0] += 1
            writer.close()
            await _until(lambda: not link.is_open)

        done = [0]
        for _ in range(3):
            await dial()
        stats = listener.stats
        assert (stats.identified, stats.refused_backoff, stats.reconnect_loops) == (2, 1, 1)
        await dial()  # within the back-off: refused without counting a new loop
        assert (stats.identified, stats.refused_backoff, stats.reconnect_loops) == (2, 2, 1)
        first_until, first_backoff = listener._backoff[spec.system_title.hex()]
        await asyncio.sleep(max(0.0, first_until - time.monotonic()) + 0.05)
        for _ in range(3):  # served again after the back-off, then a second loop
            await dial()
        assert (stats.identified, stats.reconnect_loops) == (4, 2)
        assert listener._backoff[spec.system_title.hex()][1] == 2 * first_backoff
        await hub.stop()

    asyncio.run(main())
