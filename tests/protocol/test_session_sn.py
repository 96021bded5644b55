"""MeterSession with short-name referencing, against simulated SN meters over real TCP sockets.

Reads (one ReadRequest for many names), scalers and units, writes, methods, the clock, load
profiles in data blocks (which need the gurux block-transfer workarounds), the short-name cache
and its refresh after a reconnect; and minAssociationIntervalS.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from tb_dlms.protocol.errors import AccessError
from tb_dlms.protocol.readings import AttributeRef
from tb_dlms.protocol.session import MeterSession
from tb_dlms.protocol.settings import Authentication, Interface, MeterSettings, Referencing, Secret
from tb_dlms.simulator.simulator import Simulator
from tb_dlms.simulator.spec import MeterSpec

VOLTAGE = AttributeRef.of("1.0.32.7.0.255")
ENERGY = AttributeRef.of("1.0.1.8.0.255")
UNKNOWN = AttributeRef.of("9.9.9.9.9.9")
CLOCK = AttributeRef.of("0.0.1.0.0.255", 8)
SERIAL = AttributeRef.of("0.0.96.1.0.255", 1)
CONTROL_MODE = AttributeRef.of("0.0.96.3.10.255", 70, 4)
OUTPUT_STATE = AttributeRef.of("0.0.96.3.10.255", 70, 2)
DISCONNECT = AttributeRef.of("0.0.96.3.10.255", 70, 1)
RECONNECT = AttributeRef.of("0.0.96.3.10.255", 70, 2)
PROFILE = "1.0.99.1.0.255"


@pytest.fixture(scope="module")
def sim():
    specs = [MeterSpec(name=f"sn-{i}", interface=i, auth="low", referencing="sn") for i in ("wrapper", "hdlc")]
    specs.append(MeterSpec(name="no-deviation", auth="low", referencing="sn", reject_range_deviation=True))
    with Simulator(specs) as s:
        yield s


def settings_for(sim: Simulator, name: str, **over) -> MeterSettings:
    spec = sim.meter(name).spec
    kw = dict(host="127.0.0.1", port=sim.port_of(name), interface=Interface(spec.interface),
              client_address=spec.client_address, authentication=Authentication.LOW,
              password=Secret(spec.password.encode()), referencing=Referencing.SN, timeout=3.0, retries=1,
              name=name, max_pdu_size=spec.max_pdu)
    kw.update(over)
    return MeterSettings(**kw)


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("name", ["sn-wrapper", "sn-hdlc"])
def test_read_many_names_in_one_request_with_scalers_units_and_errors(sim, name):
    async def go():
        session = MeterSession(settings_for(sim, name))
        try:
            readings = await session.read([VOLTAGE, ENERGY, UNKNOWN, CLOCK, SERIAL])
            trips = session.stats.round_trips
            again = await session.read([VOLTAGE, ENERGY])
            return readings, session.stats.round_trips - trips, again
        finally:
            await session.close()

    (volt, energy, unknown, clock, serial), trips, again = run(go())
    assert 180 < volt.value < 260 and volt.unit == "V" and volt.scaler == -1
    assert energy.ok and energy.unit == "Wh"
    assert unknown.error == "3/9.9.9.9.9.9/2: object-undefined"  # its slot kept: the others still read
    assert clock.ok and dt.datetime.fromisoformat(clock.value).year >= 2024
    assert serial.value == str(sim.meter(name).spec.serial_number)
    # Short names and scalers are cached: the second poll is one ReadRequest (one frame each way
    # on WRAPPER; HDLC may add a receive-ready per segment).
    assert trips == 1 if name == "sn-wrapper" else trips >= 1
    assert [r.ok for r in again] == [True, True]


def test_write_and_method_by_short_name(sim):
    async def go():
        session = MeterSession(settings_for(sim, "sn-wrapper"))
        try:
            await session.set(CONTROL_MODE, 2, "enum")
            mode = await session.get(CONTROL_MODE)
            await session.action(DISCONNECT, 0, "int8")
            off = await session.get(OUTPUT_STATE)
            await session.action(RECONNECT, 0, "int8")
            on = await session.get(OUTPUT_STATE)
            with pytest.raises(AccessError, match="read-write-denied"):
                await session.set(VOLTAGE, 1, "uint16")
            await session.set(CONTROL_MODE, 4, "enum")
            return mode.value, off.value, on.value
        finally:
            await session.close()

    assert run(go()) == (2, False, True)


def test_clock_write_by_short_name(sim):
    meter = sim.meter("sn-wrapper")

    async def go():
        session = MeterSession(settings_for(sim, "sn-wrapper"))
        try:
            target = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
            from tb_dlms.protocol.values import encode_datetime

            await session.set(CLOCK, encode_datetime(target, session.settings.deviation_utc_minus_local),
                              "octet_string")
            return (await session.get(CLOCK)).value
        finally:
            await session.close()
            meter.clock_offset = 0.0

    read_back = dt.datetime.fromisoformat(run(go()))
    assert abs((read_back - dt.datetime.now(dt.timezone.utc)).total_seconds() - 7200) < 120


@pytest.mark.parametrize("name", ["sn-wrapper", "sn-hdlc"])
def test_profile_by_range_needs_block_transfer(sim, name):
    """Two days of a 15-minute profile are ~5 KB: several data blocks at a 1024-byte PDU. Fails
    without the gurux workarounds (AttributeError setTotalCount, then a block request 0x00)."""
    async def go():
        session = MeterSession(settings_for(sim, name))
        try:
            end = dt.datetime.now(dt.timezone.utc)
            data = await session.read_profile(PROFILE, end - dt.timedelta(days=2), end)
            return data, await session.profile_entries(PROFILE)
        finally:
            await session.close()

    data, entries = run(go())
    assert 180 <= len(data.rows) <= 193
    stamps = [r.timestamp_ms for r in data.rows]
    assert stamps == sorted(stamps) and all(b - a == 900_000 for a, b in zip(stamps, stamps[1:], strict=False))
    assert all(isinstance(r.values[1], int) for r in data.rows)
    assert entries >= len(data.rows)


def test_a_block_transfer_as_the_first_read_of_an_association(sim):
    """The whole buffer (three days, ~7 KB) in one single-name read, before any list read: the
    block continuation must be a ReadRequest (fails without the sn-block-command workaround)."""
    async def go():
        session = MeterSession(settings_for(sim, "sn-wrapper"))
        try:
            return await session.get(AttributeRef.of(PROFILE, 7, 2)), session.stats.round_trips
        finally:
            await session.close()

    reading, trips = run(go())
    assert reading.ok and len(reading.value) >= 3 * 96 - 1
    assert trips > 4  # AARQ, object list, then several blocks


def test_no_range_deviation_for_a_meter_that_rejects_one(sim):
    """noRangeDeviation: the range bounds go with deviation 0x8000, which this meter accepts."""
    async def read(**over):
        session = MeterSession(settings_for(sim, "no-deviation", **over))
        try:
            end = dt.datetime.now(dt.timezone.utc)
            return await session.read_profile(PROFILE, end - dt.timedelta(hours=2), end)
        finally:
            await session.close()

    with pytest.raises(AccessError, match="other-reason"):
        run(read())
    data = run(read(no_range_deviation=True))
    assert 7 <= len(data.rows) <= 9
    assert all(r.timestamp_ms % 900_000 == 0 for r in data.rows)


def test_short_names_are_read_again_after_a_reconnect(sim):
    async def go():
        session = MeterSession(settings_for(sim, "sn-wrapper"))
        try:
            await session.read([VOLTAGE])
            first = session._short_names
            await session.read([VOLTAGE])
            cached = session._short_names is first
            await session.abort()
            await session.read([VOLTAGE])
            return cached, session._short_names is not first and session._short_names is not None
        finally:
            await session.close()

    assert run(go()) == (True, True)


def test_min_association_interval_is_honoured(sim):
    """minAssociationIntervalS: a second association waits out the interval after the first."""
    interval = 1.5

    async def go():
        session = MeterSession(settings_for(sim, "sn-wrapper", min_association_interval=interval))
        try:
            before = sim.meter("sn-wrapper").associations
            start = time.monotonic()
            await session.connect()
            await session.abort()  # the association is gone: the next use associates again
            await session.connect()
            return time.monotonic() - start, sim.meter("sn-wrapper").associations - before
        finally:
            await session.close()

    elapsed, associations = run(go())
    assert associations == 2
    assert elapsed >= interval


def test_hls_by_short_names_is_refused_with_the_reason(sim):
    """Settings built in code (not through the schema) get the schema's reason, not a pass-3 failure."""
    async def go():
        session = MeterSession(settings_for(sim, "sn-wrapper", authentication=Authentication.HIGH_MD5))
        try:
            with pytest.raises(Exception, match="short-name referencing with HLS-MD5 is not supported"):
                await session.read([VOLTAGE])
        finally:
            await session.close()
    run(go())
