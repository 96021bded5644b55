"""A scaling fix to the gateway core (3.8.5), applied by our launcher.

``TBGatewayService.add_device`` rewrites ``connected_devices.json`` with *every* known device
(pretty-printed, sorted) each time one new device connects. Connecting N meters therefore
serialises N(N+1)/2 device entries: measured with bench/scale.py at 5000 meters, 48% of the
gateway's CPU went to simplejson and 19% to building those dicts, and the first polls of the
fleet queued behind it for minutes. Here the file is still written on the first change at once,
then at most once per ``interval`` seconds with everything that changed meanwhile. The file is
a restart hint (which devices were connected); a write coalesced away at a crash only means the
gateway re-announces that device on its next reading, as it does for any new one.

Also applied here: the remote-configuration guard of :mod:`tb_dlms.launcher.remote_config` (a
configuration from ThingsBoard is validated before the running connector stops; secrets masked).

``TB_DLMS_GATEWAY_FIXES=0`` leaves the gateway exactly as shipped.
"""
from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger("tb_dlms.launcher")

_METHOD = "_TBGatewayService__save_persistent_devices"
_MARK = "_tb_dlms_coalesced"


class _Coalescer:
    """Leading-edge write, then at most one trailing write per interval."""

    def __init__(self, write, interval: float) -> None:
        self._write = write
        self._interval = interval
        self._lock = threading.Lock()
        self._dirty = False
        self._worker: threading.Thread | None = None

    def request(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._dirty = True
                return
            self._worker = threading.Thread(target=self._run, name="tb-dlms-device-persistence", daemon=True)
            self._worker.start()
        self._write()

    def _run(self) -> None:
        while True:
            time.sleep(self._interval)  # rate limit of a background writer, not synchronisation
            with self._lock:
                if not self._dirty:
                    self._worker = None
                    return
                self._dirty = False
            self._write()

    def flush(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, False
        if dirty:
            self._write()


def coalesce_device_persistence(service_cls, interval: float = 2.0) -> bool:
    original = getattr(service_cls, _METHOD, None)
    if original is None or getattr(original, _MARK, False):
        return False

    def save(self) -> None:
        coalescer = self.__dict__.get("_tb_dlms_coalescer")
        if coalescer is None:
            coalescer = self.__dict__["_tb_dlms_coalescer"] = _Coalescer(lambda: original(self), interval)
        coalescer.request()

    setattr(save, _MARK, True)
    setattr(service_cls, _METHOD, save)
    return True


def apply(service_cls) -> None:
    if os.environ.get("TB_DLMS_GATEWAY_FIXES", "1").lower() in ("0", "false", "no"):
        log.info("Gateway core left as shipped (TB_DLMS_GATEWAY_FIXES=0)")
        return
    if coalesce_device_persistence(service_cls):
        log.info("Gateway fix: connected_devices.json writes coalesced (at most one per 2 s)")
    from . import remote_config

    if remote_config.apply():
        log.info("Gateway fix: remote configuration of dlms connectors validated before it replaces them")
