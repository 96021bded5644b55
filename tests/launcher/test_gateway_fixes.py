"""The launcher's fix to the gateway core: device persistence coalesced, behaviour otherwise kept."""
import threading

from tb_dlms.launcher.gateway_fixes import _Coalescer, coalesce_device_persistence


class FakeService:
    def __init__(self):
        self.writes = 0
        self.cond = threading.Condition()

    def _TBGatewayService__save_persistent_devices(self):
        with self.cond:
            self.writes += 1
            self.cond.notify_all()


def test_burst_of_device_connects_costs_two_writes_not_one_per_device():
    assert coalesce_device_persistence(FakeService, interval=0.05)
    assert not coalesce_device_persistence(FakeService)  # idempotent
    svc = FakeService()
    for _ in range(1000):
        svc._TBGatewayService__save_persistent_devices()
    assert svc.writes == 1  # the first change is written at once
    coalescer = svc.__dict__["_tb_dlms_coalescer"]
    with svc.cond:
        assert svc.cond.wait_for(lambda: svc.writes >= 2, 5)  # the trailing write carries the other 999
    assert coalescer._worker is None or coalescer._worker.join(5) is None
    assert svc.writes == 2
    coalescer.flush()
    assert svc.writes == 2  # nothing left unwritten


def test_flush_writes_pending_change():
    writes = []
    c = _Coalescer(lambda: writes.append(1), interval=60)
    c.request()
    c.request()
    assert writes == [1]
    c.flush()
    assert writes == [1, 1]
