"""The gateway's storage refusing data: noticed from its log records and its Status, never counted as sent."""
from __future__ import annotations

import logging

from gateway_fakes import FakeGateway, FakeFleet, MeterScript
from thingsboard_gateway.gateway.constant_enums import Status

from tb_dlms.devtools.gateway_process import wait_until
from tb_dlms.gateway.connector import DLMSConnector
from tb_dlms.gateway.cursors import Cursor, CursorStore
from tb_dlms.gateway.storage_watch import StorageWatch

LOG = logging.getLogger("test.dlms.storage")
LOAD = "1.0.99.1.0.255"


def test_refusals_are_read_from_the_gateway_storage_and_service_loggers():
    now = [0.0]
    watch = StorageWatch(settle_s=3, clock=lambda: now[0])
    watch.attach()
    try:
        logging.getLogger("service").warning("Device %s forbidden", "M")  # not a storage refusal
        logging.getLogger("storage").info("FileStorage_reader -- Initializing")
        assert watch.problem() is None and watch.refusals == 0
        logging.getLogger("storage").warning("Failed to update data file![%s]\n%s", "data_1.txt",
                                             OSError(28, "No space left on device"))
        assert "[Errno 28] No space left on device" in watch.problem()
        logging.getLogger("service").error('%rData from the device "%s" cannot be saved, connector name is %s.',
                                           "", "M", "DLMS")
        assert watch.refusals == 2 and "cannot be saved" in watch.problem()
    finally:
        watch.detach()
    # It takes data again once something handed over after the refusal had settle_s without a new one.
    now[0] = 1
    watch.handed_over()
    now[0] = 3.5
    assert watch.problem() is not None
    now[0] = 4.1
    assert watch.problem() is None


def test_a_refusal_after_a_hand_over_sends_the_cursor_back_to_the_last_saved_one(tmp_path):
    now = [0.0]
    failed = [None]
    store = CursorStore(tmp_path / "c.cursors.json", LOG, settle_s=3, clock=lambda: now[0],
                        storage_failed_at=lambda: failed[0])
    store.advance("M", LOAD, Cursor(1000))
    now[0] = 4
    assert store.flush() and store.durable("M", LOAD) == Cursor(1000)
    store.advance("M", LOAD, Cursor(2000))
    now[0] = 5
    store.advance("M", LOAD, Cursor(3000))
    failed[0] = 5.5  # the gateway's storage refused something after both hand-overs
    now[0] = 9
    assert not store.flush()
    assert store.get("M", LOAD) == Cursor(1000) and store.durable("M", LOAD) == Cursor(1000)
    assert store.rolled_back("M", LOAD) and not store.rolled_back("M", LOAD)
    store.advance("M", LOAD, Cursor(3000))  # read again after the refusal: saved as usual
    now[0] = 13
    assert store.flush() and store.durable("M", LOAD) == Cursor(3000)


class RefusingGateway(FakeGateway):
    def __init__(self) -> None:
        super().__init__()
        self.refusing = True

    def send_to_storage(self, connector_name, connector_id, data):
        if self.refusing:
            return Status.FAILURE
        super().send_to_storage(connector_name, connector_id, data)
        return Status.SUCCESS


def test_live_readings_refused_are_said_once_per_meter_and_not_counted_as_sent():
    gateway = RefusingGateway()
    factory = FakeFleet(M1=MeterScript(values={"1.0.32.7.0.255": 230.0}),
                        M2=MeterScript(values={"1.0.32.7.0.255": 231.0}))
    # One endpoint each: two devices on one endpoint and address are a config error.
    devices = [{"deviceName": n, "pollPeriod": 0.1, "connection": {"host": "127.0.0.1", "port": port},
                "timeseries": [{"key": "voltageL1", "obis": "1.0.32.7.0.255"}]} for port, n in ((1, "M1"), (2, "M2"))]
    connector = DLMSConnector(gateway, {"name": "DLMS Test", "id": "c1", "devices": devices}, "dlms",
                              session_factory=factory)
    connector.open()
    try:
        wait_until(lambda: all(d.storage_refusals >= 3 for d in connector.devices.values()), 10, "refused polls")
        assert connector.statistics["MessagesSent"] == 0
        for device in connector.devices.values():
            report = device.report()
            assert report["storageError"] == "send_to_storage answered FAILURE", report
            assert report["lastError"] == "gateway storage refuses data: send_to_storage answered FAILURE"
        gateway.refusing = False
        wait_until(lambda: all(d.storage_error is None for d in connector.devices.values()), 10, "storage back")
        wait_until(lambda: all("refused data from" in str(gateway.attributes(n).get("lastError"))
                               for n in ("M1", "M2")), 10, "lastError naming the refusal")
        assert connector.statistics["MessagesSent"] > 0
    finally:
        connector.close()
