"""The meter's COSEM object model, shared by every simulated meter in the process.

Gurux objects are heavy (dozens of attributes each); a thousand meters with their own copies
would cost tens of megabytes for data that never differs. So the objects here are built once and
used only for what gurux needs them for (finding objects, class ids, the association view, method
dispatch). Every readable value is computed per request from the meter's own state and handed
to gurux pre-encoded (see meter.py), so the shared objects never hold a meter's values.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from gurux_dlms.enums import DataType
from gurux_dlms.objects import (
    GXDLMSCaptureObject,
    GXDLMSClock,
    GXDLMSData,
    GXDLMSDisconnectControl,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
    GXDLMSSecuritySetup,
)

from ..protocol import axdr
from .physics import Load

CLOCK = "0.0.1.0.0.255"
SERIAL = "0.0.96.1.0.255"
SERIAL_RAW = "0.0.96.1.1.255"
#: COSEM logical device name: what a head-end reads to identify a meter that called in.
LOGICAL_DEVICE_NAME = "0.0.42.0.0.255"
FIRMWARE = "1.0.0.2.0.255"
FRAME_COUNTER = "0.0.43.1.0.255"
#: Security Setup (class 64) of the management association: global_key_transfer is method 2.
SECURITY_SETUP = "0.0.43.0.0.255"
EVENT_CODE = "0.0.96.11.0.255"
DISCONNECT = "0.0.96.3.10.255"
LOAD_PROFILE = "1.0.99.1.0.255"
#: A 4-channel 15-min load profile (A+, A-, R+ energies and apparent power), the shape of the
#: DLMS UA's optical read-out measurement (bench/bench_serial.py).
LOAD_PROFILE_4 = "1.0.99.2.0.255"
PROFILE_4_CHANNELS = ("1.0.1.8.0.255", "1.0.2.8.0.255", "1.0.3.8.0.255", "1.0.9.7.0.255")
EVENT_LOG = "0.0.99.98.0.255"
ENERGY_IMPORT = "1.0.1.8.0.255"
ENERGY_EXPORT = "1.0.2.8.0.255"
CAPTURE_PERIOD = 900

# Standard event codes (DLMS UA 1000-1 / IDIS event group "standard").
EVENT_POWER_DOWN = 1
EVENT_POWER_UP = 2
EVENT_CLOCK_ADJUSTED_OLD = 4
EVENT_CLOCK_ADJUSTED_NEW = 5
EVENT_DISCONNECT = 70  # IDIS disconnector group, logged here for visibility
EVENT_RECONNECT = 71


@dataclass(frozen=True, slots=True)
class RegisterDef:
    obis: str
    unit: int
    scaler: int
    tag: axdr.DataType
    quantity: Callable[[Load, float], float]

    def encode(self, load: Load, t: float) -> bytes:
        return axdr.integer(self.tag, round(self.quantity(load, t) / 10 ** self.scaler))


def _phase(fn, phase):
    return lambda load, t: fn(load, phase, t)


REGISTERS: tuple[RegisterDef, ...] = (
    RegisterDef("1.0.32.7.0.255", 35, -1, axdr.DataType.UINT16, _phase(Load.voltage, 0)),
    RegisterDef("1.0.52.7.0.255", 35, -1, axdr.DataType.UINT16, _phase(Load.voltage, 1)),
    RegisterDef("1.0.72.7.0.255", 35, -2, axdr.DataType.UINT16, _phase(Load.voltage, 2)),
    RegisterDef("1.0.31.7.0.255", 33, -3, axdr.DataType.UINT32, _phase(Load.current, 0)),
    RegisterDef("1.0.51.7.0.255", 33, -3, axdr.DataType.UINT32, _phase(Load.current, 1)),
    RegisterDef("1.0.71.7.0.255", 33, -3, axdr.DataType.UINT32, _phase(Load.current, 2)),
    RegisterDef("1.0.14.7.0.255", 44, -2, axdr.DataType.UINT16, Load.frequency),
    RegisterDef("1.0.1.7.0.255", 27, 0, axdr.DataType.INT32, Load.active_power),
    RegisterDef("1.0.3.7.0.255", 29, 0, axdr.DataType.INT32, Load.reactive_power),
    RegisterDef("1.0.9.7.0.255", 28, 0, axdr.DataType.UINT32, Load.apparent_power),
    RegisterDef("1.0.13.7.0.255", 255, -3, axdr.DataType.INT16, lambda load, t: load.power_factor),
    RegisterDef(ENERGY_IMPORT, 30, 0, axdr.DataType.UINT32, Load.energy_import),
    RegisterDef(ENERGY_EXPORT, 30, 0, axdr.DataType.UINT32, Load.energy_export),
    RegisterDef("1.0.3.8.0.255", 32, 0, axdr.DataType.UINT32, Load.energy_reactive),
)
REGISTER_BY_LN = {r.obis: r for r in REGISTERS}
def _scaler_unit(scaler: int, unit: int) -> bytes:
    """Register attribute 3: structure {scaler integer, unit enum}."""
    return axdr.structure(axdr.integer(axdr.DataType.INT8, scaler), axdr.integer(axdr.DataType.ENUM, unit))


SCALER_UNIT = {r.obis: _scaler_unit(r.scaler, r.unit) for r in REGISTERS}


@functools.lru_cache(maxsize=1)
def shared_objects() -> tuple:
    """Build the process-wide gurux objects (everything except the per-meter association)."""
    objs = []
    by_ln = {}
    for r in REGISTERS:
        reg = GXDLMSRegister(r.obis)
        reg.scaler = 10 ** r.scaler
        objs.append(reg)
        by_ln[r.obis] = reg
    for ln in (SERIAL, SERIAL_RAW, FIRMWARE, LOGICAL_DEVICE_NAME):
        d = GXDLMSData(ln)
        d.setDataType(2, DataType.OCTET_STRING)
        objs.append(d)
    counter = GXDLMSData(FRAME_COUNTER)
    counter.setDataType(2, DataType.UINT32)
    event_code = GXDLMSData(EVENT_CODE)
    event_code.setDataType(2, DataType.UINT8)
    objs += [counter, event_code]
    clock = GXDLMSClock(CLOCK)
    objs.append(clock)
    disconnect = GXDLMSDisconnectControl(DISCONNECT)
    objs.append(disconnect)
    objs.append(GXDLMSSecuritySetup(SECURITY_SETUP))

    profile = GXDLMSProfileGeneric(LOAD_PROFILE)
    profile.capturePeriod = CAPTURE_PERIOD
    profile.captureObjects = [
        (clock, GXDLMSCaptureObject(2, 0)),
        (by_ln[ENERGY_IMPORT], GXDLMSCaptureObject(2, 0)),
        (by_ln[ENERGY_EXPORT], GXDLMSCaptureObject(2, 0)),
    ]
    profile4 = GXDLMSProfileGeneric(LOAD_PROFILE_4)
    profile4.capturePeriod = CAPTURE_PERIOD
    profile4.captureObjects = [(clock, GXDLMSCaptureObject(2, 0))] + [
        (by_ln[ln], GXDLMSCaptureObject(2, 0)) for ln in PROFILE_4_CHANNELS]
    objs.append(profile4)
    events = GXDLMSProfileGeneric(EVENT_LOG)
    events.captureObjects = [(clock, GXDLMSCaptureObject(2, 0)), (event_code, GXDLMSCaptureObject(2, 0))]
    objs += [profile, events]
    return tuple(objs)
