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
    write = FakeService._TBGatewayService__save_persistent_devices
    assert coalesce_device_persistence(FakeService, interval=0.05, write=write)
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


class _Connector:
    def get_name(self):
        return "DLMS Connector"

    def get_id(self):
        return "dlms-id"


def _real_service(tmp_path):
    """A TBGatewayService with the real persistence method and just the state it reads, not started."""
    import logging

    from thingsboard_gateway.gateway import tb_gateway_service
    from thingsboard_gateway.gateway.tb_gateway_service import TBGatewayService

    if tb_gateway_service.log is None:  # set by a started gateway
        tb_gateway_service.log = logging.getLogger("tb_gateway_service")

    class Service(TBGatewayService):
        def __init__(self):  # no gateway start: only the device bookkeeping is exercised
            self._TBGatewayService__lock = threading.RLock()
            self._TBGatewayService__connected_devices = {}
            self._TBGatewayService__disconnected_devices = {}
            self._TBGatewayService__renamed_devices = {}
            self._config_dir = str(tmp_path) + "/"

    assert coalesce_device_persistence(Service, interval=0.01)
    return Service()


def test_writer_survives_thousands_of_devices_connecting_while_it_writes(tmp_path, monkeypatch):
    """add_device inserts into the live dict without the gateway's lock while the writer iterates it:
    the writer must neither die ("dictionary changed size during iteration") nor stop writing."""
    import json
    import sys
    import time

    from thingsboard_gateway.gateway.constants import CONNECTOR_PARAMETER, DEVICE_TYPE_PARAMETER

    failures = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the threads as often as possible
    svc = _real_service(tmp_path)
    devices = svc._TBGatewayService__connected_devices
    connector, threads, per_thread = _Connector(), 4, 1500

    def connect(first):  # what TBGatewayService.add_device does for a new device
        try:
            for i in range(first, first + per_thread):
                devices[f"Meter {i}"] = {CONNECTOR_PARAMETER: connector, DEVICE_TYPE_PARAMETER: "dlms-meter"}
                svc._TBGatewayService__save_persistent_devices()
                time.sleep(0)  # yield the GIL: devices keep arriving while the writer runs, as in a fleet
        except Exception as exc:  # the leading-edge write runs in the caller's thread
            failures.append(exc)

    try:
        workers = [threading.Thread(target=connect, args=(n * per_thread,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
    finally:
        sys.setswitchinterval(old_interval)
    path = tmp_path / "connected_devices.json"

    def written():
        try:
            return len(json.loads(path.read_text())) == threads * per_thread
        except (OSError, ValueError):
            return False

    deadline = time.monotonic() + 30
    while not written() and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a file with a deadline: the writer has no event to wait on
    assert not failures, failures[:3]
    assert written(), "connected_devices.json does not list every connected device"


def test_a_failed_write_is_retried_and_the_writer_lives_on():
    calls, done = [], threading.Event()

    def write():
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        done.set()

    c = _Coalescer(write, interval=0.01)
    c.request()  # fails: logged, marked dirty, not raised into add_device
    assert done.wait(5), "the failed write was not retried"
    c._worker.join(5)
    c.request()  # a later change still gets written
    assert len(calls) == 3
