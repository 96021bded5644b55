"""One meter's poll, driven directly on an event loop: what reaches the gateway, and when."""
from __future__ import annotations

import asyncio
import logging
import time

from gateway_fakes import FakeFleet, MeterScript
from thingsboard_gateway.gateway.constants import ReportStrategy

from tb_dlms.config import load_connector_config_strict
from tb_dlms.gateway.device import DLMSDevice
from tb_dlms.gateway.schedule import next_slot, slots_between, start_offset

LOG = logging.getLogger("test.dlms.device")


def device_config(**extra):
    dev = {
        "deviceName": "Meter 1",
        "deviceType": "dlms-meter",
        "connection": {"host": "127.0.0.1"},
        "timeseries": [
            {"key": "voltageL1", "obis": "1.0.32.7.0.255",
             "reportStrategy": {"type": "ON_CHANGE"}},
            {"key": "currentL1", "obis": "1-0:31.7.0*255"},
            {"key": "energyImport", "obis": "1.0.1.8.0.255"},
        ],
        "attributes": [{"key": "serialNumber", "obis": "0.0.96.1.0.255", "classId": 1}],
        **extra,
    }
    return load_connector_config_strict({"devices": [dev]}).devices[0]


def make(script: MeterScript, **extra):
    sent = []
    fleet = FakeFleet(**{"Meter 1": script})
    return DLMSDevice(device_config(**extra), fleet, sent.append, LOG, close_bound_s=0.2), sent


def telemetry(sent):
    return [(e.ts, {k.key: v for k, v in e.values.items()}) for d in sent for e in d.telemetry]


def attributes(sent):
    out = {}
    for d in sent:
        out.update(d.attributes.to_dict())
    return out


def test_poll_sends_mapped_keys_with_read_time():
    script = MeterScript(values={"1.0.32.7.0.255": 231.5, "1.0.31.7.0.255": 4.25, "1.0.1.8.0.255": 123456})
    device, sent = make(script)
    before = int(time.time() * 1000)
    assert asyncio.run(device.poll()) is True
    after = int(time.time() * 1000)
    [(ts, values)] = telemetry(sent)
    assert values == {"voltageL1": 231.5, "currentL1": 4.25, "energyImport": 123456}
    assert before <= ts <= after
    assert all(d.device_name == "Meter 1" and d.device_type == "dlms-meter" for d in sent)
    assert [str(r.obis) for r in script.read_refs[0]] == ["1.0.32.7.0.255", "1.0.31.7.0.255", "1.0.1.8.0.255"]


def test_per_key_report_strategy_reaches_the_datapoint_key():
    device, sent = make(MeterScript())
    asyncio.run(device.poll())
    keys = {k.key: k.report_strategy for d in sent for e in d.telemetry for k in e.values}
    assert keys["voltageL1"].report_strategy is ReportStrategy.ON_CHANGE
    assert keys["currentL1"] is None  # the gateway applies the connector's strategy


def test_failed_attribute_is_skipped_counted_and_named(caplog):
    script = MeterScript(errors={"1.0.31.7.0.255": "OBJECT_UNDEFINED"})
    device, sent = make(script)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        asyncio.run(device.poll())
    [(_, values)] = telemetry(sent)
    assert set(values) == {"voltageL1", "energyImport"}
    assert device.skipped_readings == 1
    assert device.report()["skippedReadings"] == 1
    [message] = [r.getMessage() for r in caplog.records if "not read" in r.getMessage()]
    assert "Meter 1" in message and "currentL1" in message and "1.0.31.7.0.255" in message
    assert "OBJECT_UNDEFINED" in message


def test_attributes_are_read_after_each_association_not_every_poll():
    script = MeterScript(values={"0.0.96.1.0.255": "SN123"})
    device, sent = make(script)

    async def scenario():
        await device.poll()
        await device.poll()
        assert sum(1 for refs in script.read_refs if len(refs) == 1) == 1
        await device.reconnect()
        await device.poll()

    asyncio.run(scenario())
    attribute_reads = [refs for refs in script.read_refs if len(refs) == 1]
    assert len(attribute_reads) == 2
    assert attributes(sent)["serialNumber"] == "SN123"
    assert script.closes == 1


def test_health_attributes_are_sent_only_when_they_change():
    script = MeterScript()
    device, sent = make(script)

    async def scenario():
        await device.poll()
        await device.poll()
        script.fail = ConnectionRefusedError("connection refused")
        await device.poll()
        await device.poll()
        script.fail = None
        await device.poll()

    asyncio.run(scenario())
    health = [d.attributes.to_dict() for d in sent
              if "dlmsConnected" in d.attributes.to_dict() or "lastError" in d.attributes.to_dict()]
    assert health == [{"dlmsConnected": True},
                      {"dlmsConnected": False, "lastError": "connection refused"},
                      {"dlmsConnected": True}]
    stats = device.report()
    assert (stats["pollsOk"], stats["pollsFailed"], stats["lastError"]) == (3, 2, "connection refused")


def test_poll_deadline_ends_a_hung_read_and_closes_the_session():
    script = MeterScript(hang=True)
    device, sent = make(script, pollTimeoutMs=50)
    assert asyncio.run(device.poll()) is False
    assert device.poll_timeouts == 1 and script.closes == 1
    assert "poll timed out after 0.05 s" in device.last_error
    assert device.report()["errors"] == {"poll_timeout": 1}


def test_a_session_that_will_not_close_is_dropped_and_replaced():
    script = MeterScript(hang=True, hang_close=True)
    device, _ = make(script, pollTimeoutMs=50)

    async def scenario():
        await device.poll()
        assert device.session is None
        script.hang = False
        await device.poll()

    asyncio.run(scenario())
    assert len(script.sessions) == 2
    assert device.report()["pollsOk"] == 1  # counters survive the replaced session


def test_get_on_demand_returns_value_and_unit():
    device, _ = make(MeterScript(values={"1.0.14.7.0.255": 50.01}))
    from tb_dlms.protocol.readings import AttributeRef
    reply = asyncio.run(device.get(AttributeRef.of("1.0.14.7.0.255")))
    assert reply == {"obis": "1.0.14.7.0.255", "classId": 3, "attribute": 2, "value": 50.01, "unit": "V"}


def test_schedule_grid_offsets_and_skips():
    period = 60.0
    offsets = {start_offset(f"Meter {i}", period) for i in range(100)}
    assert len(offsets) == 100 and all(0 <= o < 60 for o in offsets)
    assert max(offsets) > 40  # spread over the period, not bunched at its start
    assert all(0 <= start_offset(f"Meter {i}", 900.0) < 60 for i in range(100))  # long periods: first minute
    assert start_offset("Meter 1", period) == start_offset("Meter 1", period)
    assert start_offset("x", 0.5) < 0.5
    assert next_slot(1000.0, 60, 7) == 1027.0
    assert next_slot(1027.0, 60, 7) == 1087.0
    assert slots_between(1027.0, 1207.0, 60) == 2
    assert slots_between(1027.0, 1087.0, 60) == 0
