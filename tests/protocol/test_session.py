"""MeterSession against simulated meters over real TCP sockets.

Every transport x authentication combination, meters sharing one HDLC port, block transfer,
each decoded data type, and recovery from the faults a meter can throw at us.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from tb_dlms.protocol.errors import AccessError, AssociationRejected, LinkClosed, NoHdlcResponse, ReplyTimeout
from tb_dlms.protocol.readings import AttributeRef
from tb_dlms.protocol.session import MeterSession
from tb_dlms.protocol.settings import Authentication, Interface, MeterSettings, Secret, Security
from tb_dlms.protocol.transport import LinkPool
from tb_dlms.simulator.faults import Fault
from tb_dlms.simulator.simulator import Simulator
from tb_dlms.simulator.spec import MeterSpec

REGISTERS = [AttributeRef.of(o) for o in (
    "1.0.32.7.0.255", "1.0.52.7.0.255", "1.0.72.7.0.255", "1.0.31.7.0.255", "1.0.51.7.0.255",
    "1.0.71.7.0.255", "1.0.14.7.0.255", "1.0.1.7.0.255", "1.0.1.8.0.255", "1.0.2.8.0.255",
)]
SERIAL = AttributeRef.of("0.0.96.1.0.255", 1)
CLOCK = AttributeRef.of("0.0.1.0.0.255", 8)

COMBOS = [(i, a) for i in ("wrapper", "hdlc") for a in ("none", "low", "high_gmac")]


def _spec(name, interface, auth, **kw):
    return MeterSpec(name=name, interface=interface, auth=auth, **kw)


@pytest.fixture(scope="module")
def sim():
    specs = [_spec(f"{i}-{a}", i, a) for i, a in COMBOS]
    specs += [
        # Three meters behind one serial server, told apart by HDLC address.
        _spec("bus-1", "hdlc", "none", hdlc_group="bus", logical_address=1),
        _spec("bus-2", "hdlc", "low", hdlc_group="bus", logical_address=1, physical_address=17, address_size=4),
        _spec("bus-3", "hdlc", "none", hdlc_group="bus", logical_address=1, address_from_serial=True),
        _spec("bus-4", "hdlc", "none", hdlc_group="bus", logical_address=1, physical_address=5, address_size=2),
        _spec("faulty", "wrapper", "none"),
        _spec("faulty-hdlc", "hdlc", "low"),
        _spec("slow", "wrapper", "none", delay=0.3),
    ]
    with Simulator(specs) as s:
        yield s


def settings_for(sim: Simulator, name: str, **over) -> MeterSettings:
    spec = sim.meter(name).spec
    auth = Authentication(spec.auth)
    kw = dict(
        host="127.0.0.1", port=sim.port_of(name), interface=Interface(spec.interface),
        client_address=spec.client_address or 16, logical_address=spec.logical_address,
        physical_address=spec.effective_physical_address,
        address_size=4 if spec.address_from_serial else spec.address_size,
        authentication=auth, timeout=2.0, retries=1, name=name, max_pdu_size=spec.max_pdu,
    )
    if auth is Authentication.LOW:
        kw["password"] = Secret(spec.password.encode())
    if auth is Authentication.HIGH_GMAC:
        kw["security"] = Security(b"TBDLMS01", Secret(spec.block_cipher_key), Secret(spec.authentication_key))
    kw.update(over)
    return MeterSettings(**kw)


def run(coro):
    return asyncio.run(coro)


async def _poll_twice(settings):
    session = MeterSession(settings)
    try:
        first = await session.read(REGISTERS)
        rt = session.stats.round_trips
        second = await session.read(REGISTERS)
        return first, second, session.stats.round_trips - rt, session.stats
    finally:
        await session.close()


@pytest.mark.parametrize("interface,auth", COMBOS)
def test_every_transport_and_authentication(sim, interface, auth):
    first, second, steady_rts, stats = run(_poll_twice(settings_for(sim, f"{interface}-{auth}")))
    assert all(r.ok for r in first + second), [r.error for r in first + second if not r.ok]
    volts = second[0]
    assert volts.unit == "V" and 180 < volts.value < 260
    assert second[3].unit == "A" and second[6].unit == "Hz" and 45 < second[6].value < 55
    assert second[8].unit == "Wh" and second[8].value >= first[8].value  # energy only grows
    # Scalers cached, ten registers in one GET-with-list. Ciphered, that request outgrows a
    # 128-byte HDLC information field and goes out in two segments (one RR in between).
    assert steady_rts == (2 if (interface, auth) == ("hdlc", "high_gmac") else 1)
    assert stats.associations == 1


def test_wrong_password_is_rejected_not_timed_out(sim):
    settings = settings_for(sim, "wrapper-low", password=Secret(b"wrong"))

    async def go():
        session = MeterSession(settings)
        with pytest.raises(AssociationRejected) as exc:
            await session.read(REGISTERS)
        assert "wrong" not in str(exc.value)  # the secret is never echoed
        assert session.stats.errors["rejected"] == 1
        await session.close()

    run(go())


def test_wrong_keys_are_rejected(sim):
    bad = Security(b"TBDLMS01", Secret(bytes(16)), Secret(bytes(16)))

    async def go():
        session = MeterSession(settings_for(sim, "wrapper-high_gmac", security=bad, retries=0, timeout=1))
        with pytest.raises((AssociationRejected, ReplyTimeout)):
            await session.read(REGISTERS)
        await session.close()

    run(go())


def test_meters_behind_one_hdlc_port_share_one_connection(sim):
    names = ["bus-1", "bus-2", "bus-3", "bus-4"]
    assert len({sim.port_of(n) for n in names}) == 1

    async def go():
        pool = LinkPool()
        sessions = [MeterSession(settings_for(sim, n), pool) for n in names]
        results = await asyncio.gather(*(s.read([SERIAL] + REGISTERS[:3]) for s in sessions))
        serials = [r[0].value for r in results]
        assert len(pool._shared) == 1
        for s in sessions:
            await s.close()
        assert not pool._shared
        return serials

    serials = run(go())
    expected = [f"{sim.meter(n).spec.serial_number}" for n in names]
    assert [s.lstrip("SIM").lstrip("0") if isinstance(s, str) else s for s in serials] != [None] * 4
    assert len(set(serials)) == 4, serials  # each meter answered for itself
    for got, want in zip(serials, expected, strict=True):
        assert want in got


def test_wrong_hdlc_address_diagnosed(sim):
    async def go():
        session = MeterSession(settings_for(sim, "hdlc-none", logical_address=99, retries=0, timeout=0.5))
        with pytest.raises(NoHdlcResponse) as exc:
            await session.connect()
        assert "address" in str(exc.value)
        await session.close()

    run(go())


@pytest.mark.parametrize("meter", ["wrapper-none", "wrapper-high_gmac"])
def test_data_types_decoded(sim, meter):
    async def go():
        session = MeterSession(settings_for(sim, meter))
        refs = [SERIAL, AttributeRef.of("1.0.0.2.0.255", 1), AttributeRef.of("0.0.96.1.1.255", 1), CLOCK,
                AttributeRef.of("1.0.13.7.0.255"), AttributeRef.of("0.0.96.3.10.255", 70, 2),
                AttributeRef.of("0.0.96.3.10.255", 70, 3), AttributeRef.of("9.9.9.9.9.9", 1)]
        got = await session.read(refs)
        await session.close()
        return got

    serial, firmware, binary, clock, pf, relay, control, missing = run(go())
    assert isinstance(serial.value, str) and serial.value.isprintable()
    assert firmware.value == "SIM-1.4.2"
    assert all(c in "0123456789abcdef" for c in binary.value)  # non-printable: hex
    when = dt.datetime.fromisoformat(clock.value)
    assert when.tzinfo is not None
    assert abs((when - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 120
    assert pf.unit is None and -1.0 <= pf.value <= 1.0
    assert relay.value in (True, False, 0, 1)
    assert isinstance(control.value, int)
    assert missing.error and "object-undefined" in missing.error  # the rest of the poll still counts


def test_single_gets_when_meter_lacks_multiple_references(sim, monkeypatch):
    from gurux_dlms.enums import Conformance

    async def go():
        session = MeterSession(settings_for(sim, "wrapper-none"))
        await session.connect()
        session._client.negotiatedConformance &= ~Conformance.MULTIPLE_REFERENCES
        rt = session.stats.round_trips
        got = await session.read(REGISTERS[:3])
        rts = session.stats.round_trips - rt
        await session.close()
        return got, rts

    got, rts = run(go())
    assert all(r.ok for r in got)
    assert rts == 6  # value and scaler for each of three


# Ciphered too: every block is a glo-get-response that the fast path declines (a data block) and
# gurux must get exactly as it came.
@pytest.mark.parametrize("meter", ["hdlc-none", "wrapper-high_gmac", "hdlc-high_gmac"])
def test_block_transfer_of_a_profile(sim, meter):
    async def go():
        session = MeterSession(settings_for(sim, meter, max_pdu_size=256))
        buffer = await session.get(AttributeRef.of("1.0.99.1.0.255", 7, 2))
        blocks = session.stats.round_trips
        await session.close()
        return buffer, blocks

    buffer, rts = run(go())
    assert buffer.ok, buffer.error
    assert len(buffer.value) >= 3 * 96  # three days of 15-minute rows
    assert rts > 10  # it took many blocks / HDLC segments


def test_write_and_method(sim):
    async def go():
        session = MeterSession(settings_for(sim, "wrapper-low"))
        relay = AttributeRef.of("0.0.96.3.10.255", 70, 2)
        await session.action(AttributeRef.of("0.0.96.3.10.255", 70, 1))
        off = (await session.get(relay)).value
        await session.action(AttributeRef.of("0.0.96.3.10.255", 70, 2))
        on = (await session.get(relay)).value
        await session.close()
        return off, on

    off, on = run(go())
    assert not off and on


@pytest.mark.parametrize("fault", [
    Fault("no_reply", count=1), Fault("garbage", count=1), Fault("garbage", count=1, before=True),
    Fault("half_frame", count=1), Fault("drop_connection", count=1), Fault("reset", count=1),
])
@pytest.mark.parametrize("meter", ["faulty", "faulty-hdlc"])
def test_recovers_from_fault(sim, meter, fault):
    async def go():
        session = MeterSession(settings_for(sim, meter, timeout=0.5, retries=1))
        assert all(r.ok for r in await session.read(REGISTERS))
        sim.inject(meter, fault)
        outcomes = []
        for _ in range(3):
            try:
                got = await session.read(REGISTERS)
                outcomes.append(all(r.ok for r in got))
            except (ReplyTimeout, LinkClosed) as exc:
                outcomes.append(exc.kind)
        sim.clear(meter)
        await session.close()
        return outcomes, session.stats

    outcomes, stats = run(go())
    # A fault may cost one poll, never more: the session rebuilds itself.
    assert outcomes[-1] is True, outcomes
    assert outcomes.count(True) >= 2, outcomes


def test_reboot_mid_association_recovers(sim):
    async def go():
        session = MeterSession(settings_for(sim, "faulty", timeout=0.5, retries=0))
        await session.read(REGISTERS)
        sim.reboot("faulty", close=False)
        outcomes = []
        for _ in range(3):
            try:
                outcomes.append(all(r.ok for r in await session.read(REGISTERS)))
            except Exception as exc:  # noqa: BLE001
                outcomes.append(type(exc).__name__)
        await session.close()
        return outcomes, session.stats.associations

    outcomes, associations = run(go())
    assert outcomes[-1] is True, outcomes
    assert associations >= 2


def test_late_reply_is_dropped_not_misread(sim):
    """A reply that arrives after we resent is recognised (invoke-id, command) and dropped."""
    async def go():
        session = MeterSession(settings_for(sim, "slow", timeout=0.5, retries=2))
        await session.read(REGISTERS[:2])
        sim.inject("slow", Fault("delay", count=1, seconds=0.4))  # 0.7 s: one resend needed
        results = [await session.read(REGISTERS[:2])]
        # Keep polling other objects until the second copy of the delayed reply has shown up;
        # none of them may be answered with it.
        for _ in range(20):
            if session.stats.late_replies:
                break
            results.append(await session.read([SERIAL]))
        await session.close()
        return results, session.stats

    results, stats = run(go())
    assert all(r.ok for r in results[0]) and results[0][0].unit == "V"
    assert all(isinstance(r[0].value, str) for r in results[1:])  # serial numbers, never a stale register
    assert stats.resends >= 1
    assert stats.late_replies >= 1


def test_keep_alive_touches_idle_association(sim):
    async def go():
        session = MeterSession(settings_for(sim, "wrapper-none", inactivity_timeout=0.0))
        await session.connect()
        rt = session.stats.round_trips
        touched = await session.keep_alive()
        rts = session.stats.round_trips - rt
        await session.close()
        return touched, rts

    touched, rts = run(go())
    assert touched and rts == 1


def test_close_is_idempotent_and_never_raises(sim):
    async def go():
        session = MeterSession(settings_for(sim, "wrapper-none"))
        await session.close()
        await session.connect()
        await session.close()
        await session.close()
        return session.associated

    assert run(go()) is False


def test_shared_hdlc_port_serves_meters_fairly(sim):
    """A long block transfer on one meter must not starve its neighbours on the same bus."""
    async def go():
        pool = LinkPool()
        long = MeterSession(settings_for(sim, "bus-1", max_pdu_size=128), pool)
        short = MeterSession(settings_for(sim, "bus-4"), pool)
        await long.connect()
        n = await long.profile_entries("1.0.99.1.0.255")
        transfer = asyncio.create_task(long.read_profile("1.0.99.1.0.255", entries=(1, n)))
        deadline = time.monotonic() + 60  # generous: a shared 2-core machine
        while long.stats.round_trips < 3 and not transfer.done():  # until the transfer is under way
            assert time.monotonic() < deadline, "the profile transfer never got past 3 round trips"
            await asyncio.sleep(0)
        got = await short.read(REGISTERS[:2])
        still_running = not transfer.done()
        rows = (await transfer).rows
        await short.close()
        await long.close()
        return got, still_running, len(rows), n, long.stats.round_trips

    got, still_running, rows, n, rts = run(go())
    assert all(r.ok for r in got)
    assert still_running  # the neighbour was served between blocks, not after the transfer
    assert rows == n and rts > 20


def test_refused_write_keeps_the_association(sim):
    async def go():
        session = MeterSession(settings_for(sim, "wrapper-low"))
        await session.read(REGISTERS[:1])
        with pytest.raises(AccessError):
            await session.set(AttributeRef.of("9.9.9.9.9.9", 1), 5, "uint8")  # undefined object
        still = session.associated
        after = await session.read(REGISTERS[:1])
        await session.close()
        return still, after, session.stats

    still, after, stats = run(go())
    assert still and after[0].ok
    assert stats.associations == 1 and stats.errors["access"] == 1
