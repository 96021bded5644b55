"""HDLC windows and long information fields, over real sockets to the simulator's HDLC server.

gurux-dlms 1.0.203 needed two client fixes (protocol/hdlc_fixes.py): the third frame of a window
was refused, and frames whose length crosses a multiple of 256 announced 256 bytes too few (a
1024-byte information field failed outright); its server sent one frame per RR whatever the window.
"""
from __future__ import annotations

import asyncio

import pytest

from tb_dlms.protocol.session import MeterSession
from tb_dlms.protocol.settings import Interface, MeterSettings
from tb_dlms.simulator import MeterSpec, Simulator

PROFILE = "1.0.99.1.0.255"
ROWS = 7 * 96


@pytest.fixture(scope="module")
def sim():
    s = Simulator([MeterSpec("m", interface="hdlc", max_window=7, max_info=1024, profile_days=7, seed=1)]).start()
    yield s
    s.stop()


def read_week(sim, window: int, info: int):
    async def run():
        session = MeterSession(MeterSettings("127.0.0.1", sim.port_of("m"), Interface.HDLC, hdlc_window=window,
                                             hdlc_max_info=info, timeout=2.0, retries=0, max_reply_bytes=1 << 20))
        await session.connect()
        negotiated = session._client.hdlcSettings
        got = (negotiated.windowSizeRX, negotiated.maxInfoRX)
        before = session.stats.round_trips
        data = await session.read_profile(PROFILE, entries=(1, ROWS))
        trips = session.stats.round_trips - before
        late = session.stats.late_replies
        await session.close()
        return got, len(data.rows), trips, late
    return asyncio.run(run())


def test_window_of_seven_costs_one_round_trip_per_window(sim):
    _, rows1, trips1, _ = read_week(sim, 1, 128)
    negotiated, rows7, trips7, late = read_week(sim, 7, 128)
    assert negotiated == (7, 128)
    assert rows1 == rows7 == ROWS
    assert late == 0
    # 128-byte frames, 7 per window: at most a seventh of the round trips, plus one per PDU block.
    assert trips7 * 3 < trips1, (trips1, trips7)


@pytest.mark.parametrize("info", [256, 512, 1024])
def test_information_fields_above_128_bytes(sim, info):
    negotiated, rows, _, late = read_week(sim, 7, info)
    assert negotiated == (7, info)
    assert rows == ROWS and late == 0


def test_meter_answer_in_the_ua_is_honoured():
    with Simulator([MeterSpec("small", interface="hdlc", max_window=2, max_info=256, profile_days=1)]) as s:
        async def run():
            session = MeterSession(MeterSettings("127.0.0.1", s.port_of("small"), Interface.HDLC, hdlc_window=7,
                                                 hdlc_max_info=1024, timeout=2.0, retries=0))
            await session.connect()
            h = session._client.hdlcSettings
            negotiated = (h.windowSizeRX, h.maxInfoRX, h.maxInfoTX)
            data = await session.read_profile(PROFILE, entries=(1, 96))
            await session.close()
            return negotiated, len(data.rows)
        negotiated, rows = asyncio.run(run())
    assert negotiated == (2, 256, 256) and rows == 96
