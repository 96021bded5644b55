"""Telemetry keys for well-known OBIS codes, and named profiles of them.

Keys match the shipped config (config/dlms_connector.json) and the dashboard in dashboards/, so a
discovered meter or a fleet generated from a CSV shows up on the dashboard without edits.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..protocol.obis import ObisCode


@dataclass(frozen=True, slots=True)
class Known:
    key: str
    class_id: int = 3
    #: True for values that rarely change (published as attributes, not telemetry).
    attribute: bool = False


WELL_KNOWN: dict[str, Known] = {
    "1.0.32.7.0.255": Known("voltageL1"),
    "1.0.52.7.0.255": Known("voltageL2"),
    "1.0.72.7.0.255": Known("voltageL3"),
    "1.0.31.7.0.255": Known("currentL1"),
    "1.0.51.7.0.255": Known("currentL2"),
    "1.0.71.7.0.255": Known("currentL3"),
    "1.0.91.7.0.255": Known("currentNeutral"),
    "1.0.14.7.0.255": Known("frequency"),
    "1.0.1.7.0.255": Known("activePowerImport"),
    "1.0.2.7.0.255": Known("activePowerExport"),
    "1.0.3.7.0.255": Known("reactivePowerImport"),
    "1.0.4.7.0.255": Known("reactivePowerExport"),
    "1.0.9.7.0.255": Known("apparentPowerImport"),
    "1.0.13.7.0.255": Known("powerFactor"),
    "1.0.33.7.0.255": Known("powerFactorL1"),
    "1.0.53.7.0.255": Known("powerFactorL2"),
    "1.0.73.7.0.255": Known("powerFactorL3"),
    "1.0.21.7.0.255": Known("activePowerImportL1"),
    "1.0.41.7.0.255": Known("activePowerImportL2"),
    "1.0.61.7.0.255": Known("activePowerImportL3"),
    "1.0.1.8.0.255": Known("energyImport"),
    "1.0.2.8.0.255": Known("energyExport"),
    "1.0.3.8.0.255": Known("reactiveEnergyImport"),
    "1.0.4.8.0.255": Known("reactiveEnergyExport"),
    "1.0.1.8.1.255": Known("energyImportT1"),
    "1.0.1.8.2.255": Known("energyImportT2"),
    "0.0.96.1.0.255": Known("serialNumber", 1, attribute=True),
    "1.0.0.2.0.255": Known("firmwareVersion", 1, attribute=True),
    "0.0.96.3.10.255": Known("disconnectState", 70, attribute=True),
}

_BASIC_3P = ["voltageL1", "voltageL2", "voltageL3", "currentL1", "currentL2", "currentL3", "frequency",
             "activePowerImport", "energyImport", "energyExport"]
_BASIC_1P = ["voltageL1", "currentL1", "frequency", "activePowerImport", "energyImport", "energyExport"]
_FULL_3P = _BASIC_3P + ["reactivePowerImport", "apparentPowerImport", "powerFactor", "reactiveEnergyImport"]
_INFO = ["serialNumber", "firmwareVersion"]

#: Profile name -> (timeseries keys, attribute keys); every key is in WELL_KNOWN.
PROFILES: dict[str, tuple[list[str], list[str]]] = {
    "three_phase_basic": (_BASIC_3P, _INFO),
    "three_phase_full": (_FULL_3P, _INFO),
    "single_phase_basic": (_BASIC_1P, _INFO),
    "energy_only": (["energyImport", "energyExport"], _INFO),
}

BY_KEY: dict[str, tuple[str, Known]] = {k.key: (obis, k) for obis, k in WELL_KNOWN.items()}


def key_for(obis: ObisCode) -> str:
    """The well-known key, or one spelled from the code (``obis_1_0_99_7_0_255``) for the rest."""
    known = WELL_KNOWN.get(str(obis))
    if known is not None:
        return known.key
    return "obis_" + str(obis).replace(".", "_")


def point(key: str) -> dict:
    """A ``timeseries``/``attributes`` entry of the connector JSON for a well-known key."""
    obis, known = BY_KEY[key]
    out: dict = {"key": key, "obis": obis}
    if known.class_id != 3:
        out["classId"] = known.class_id
    return out


def profile_points(name: str) -> tuple[list[dict], list[dict]]:
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    ts, attrs = PROFILES[name]
    return [point(k) for k in ts], [point(k) for k in attrs]
