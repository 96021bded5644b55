"""A scaling fix to the gateway core (3.8.5), applied by our launcher.

``TBGatewayService.add_device`` rewrites ``connected_devices.json`` with *every* known device
(pretty-printed, sorted) each time one new device connects. Connecting N meters therefore
serialises N(N+1)/2 device entries: measured with bench/scale.py at 5000 meters, 48% of the
gateway's CPU went to simplejson and 19% to building those dicts, and the first polls of the
fleet queued behind it for minutes. Here the file is still written on the first change at once,
then at most once per ``interval`` seconds with everything that changed meanwhile. The file is
a restart hint (which devices were connected); a write coalesced away at a crash only means the
gateway re-announces that device on its next reading, as it does for any new one.

The write itself is ours, on copies: ``add_device`` inserts into the gateway's device dicts without
taking the gateway's lock (only the writer takes it), so a writer iterating the live dicts in its
own thread died with "dictionary changed size during iteration" once thousands of meters connected,
and the file was never written again. A dict copy is one C call under the GIL; the file is
replaced atomically; a failed write is logged and retried at the next interval.

Also applied here: the remote-configuration guard of :mod:`tb_dlms.launcher.remote_config` (a
configuration from ThingsBoard is validated before the running connector stops; secrets masked).

``TB_DLMS_GATEWAY_FIXES=0`` leaves the gateway exactly as shipped.
"""
from __future__ import annotations

import json
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
            if self._worker is not None and self._worker.is_alive():
                self._dirty = True
                return
            self._worker = threading.Thread(target=self._run, name="tb-dlms-device-persistence", daemon=True)
            self._worker.start()
        self._safe_write()

    def _safe_write(self) -> None:
        try:
            self._write()
        except Exception:  # noqa: BLE001 - a failed write must not end the writer nor add_device
            log.exception("Writing connected_devices.json failed; retrying in %.0f s", self._interval)
            with self._lock:
                self._dirty = True

    def _run(self) -> None:
        while True:
            time.sleep(self._interval)  # rate limit of a background writer, not synchronisation
            with self._lock:
                if not self._dirty:
                    self._worker = None
                    return
                self._dirty = False
            self._safe_write()

    def flush(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, False
        if dirty:
            self._safe_write()


def _device_entry(info: dict, renamed: dict, device: str, disconnected: bool) -> dict | None:
    """One entry as TBGatewayService.__process_(dis)connected_devices builds it (3.8.5)."""
    from thingsboard_gateway.gateway.constants import (CONNECTOR_ID_PARAMETER, CONNECTOR_NAME_PARAMETER,
                                                       CONNECTOR_PARAMETER, DEVICE_TYPE_PARAMETER,
                                                       DISCONNECTED_PARAMETER, RENAMING_PARAMETER)

    connector = info.get(CONNECTOR_PARAMETER)
    if connector is not None:
        name, cid = connector.get_name(), connector.get_id()
    elif disconnected:
        name, cid = info[CONNECTOR_NAME_PARAMETER], info[CONNECTOR_ID_PARAMETER]
    else:
        return None
    return {CONNECTOR_NAME_PARAMETER: name, DEVICE_TYPE_PARAMETER: info[DEVICE_TYPE_PARAMETER],
            CONNECTOR_ID_PARAMETER: cid, RENAMING_PARAMETER: renamed.get(device),
            DISCONNECTED_PARAMETER: disconnected}


def save_persistent_devices(service) -> None:
    """The gateway's connected_devices.json write, from copies taken under its lock, replaced atomically."""
    from thingsboard_gateway.gateway.constants import CONNECTED_DEVICES_FILENAME

    with getattr(service, "_TBGatewayService__lock"):
        connected = dict(getattr(service, "_TBGatewayService__connected_devices"))
        disconnected = dict(getattr(service, "_TBGatewayService__disconnected_devices"))
        renamed = dict(getattr(service, "_TBGatewayService__renamed_devices"))
    data = {}
    for devices, is_disconnected in ((connected, False), (disconnected, True)):
        for device, info in devices.items():
            entry = _device_entry(info, renamed, device, is_disconnected)
            if entry is not None:
                data[device] = entry
    path = service._config_dir + CONNECTED_DEVICES_FILENAME
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def coalesce_device_persistence(service_cls, interval: float = 2.0, write=save_persistent_devices) -> bool:
    original = getattr(service_cls, _METHOD, None)
    if original is None or getattr(original, _MARK, False):
        return False

    def save(self) -> None:
        coalescer = self.__dict__.get("_tb_dlms_coalescer")
        if coalescer is None:
            coalescer = self.__dict__["_tb_dlms_coalescer"] = _Coalescer(lambda: write(self), interval)
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
    from . import remote_config, rpc_routing

    if rpc_routing.apply(service_cls):
        log.info("Gateway fix: device RPCs reach dlms meters that are disconnected at ThingsBoard")

    if remote_config.apply():
        log.info("Gateway fix: remote configuration of dlms connectors validated before it replaces them")
