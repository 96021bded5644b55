"""The importable ThingsBoard dashboard and device profile match what the connector publishes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tb_dlms.config import load_connector_file
from tb_dlms.gateway import device as gateway_device
from tb_dlms.launcher.remote_config import REMOTE_KEYS
from tb_dlms.tools.known_obis import PROFILES

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboards" / "dlms_meter_dashboard.json"
PROFILE = REPO / "dashboards" / "dlms_meter_device_profile.json"
HEALTH = {gateway_device.HEALTH_CONNECTED, gateway_device.HEALTH_LAST_ERROR,
          getattr(gateway_device, "HEALTH_BREAKER", "breakerState")}


def shipped_keys() -> tuple[set[str], set[str]]:
    config, errors = load_connector_file(REPO / "config" / "dlms_connector.json")
    assert not errors
    ts = {p.key for d in config.devices for p in d.timeseries}
    attrs = {p.key for d in config.devices for p in d.attributes}
    return ts, attrs


def dashboard_keys(data: dict) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"timeseries": set(), "attribute": set()}
    for widget in data["configuration"]["widgets"].values():
        for source in widget["config"]["datasources"]:
            for key in source["dataKeys"]:
                found[key["type"]].add(key["name"])
    return found


def profile_keys(data: dict) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"TIME_SERIES": set(), "CLIENT_ATTRIBUTE": set()}
    for alarm in data["profileData"]["alarms"]:
        rules = list(alarm["createRules"].values()) + [alarm["clearRule"]]
        for rule in rules:
            for cond in rule["condition"]["condition"]:
                found[cond["key"]["type"]].add(cond["key"]["key"])
    return found


@pytest.mark.parametrize("path", [DASHBOARD, PROFILE], ids=lambda p: p.name)
def test_well_formed_json(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and (data.get("title") or data.get("name"))


def test_dashboard_keys_are_what_the_shipped_config_produces():
    ts, attrs = shipped_keys()
    keys = dashboard_keys(json.loads(DASHBOARD.read_text()))
    assert keys["timeseries"] and keys["timeseries"] <= ts, keys["timeseries"] - ts
    assert keys["attribute"] <= attrs | HEALTH | set(REMOTE_KEYS), keys["attribute"] - attrs - HEALTH
    assert HEALTH <= keys["attribute"], "health attributes are on the dashboard"
    assert set(REMOTE_KEYS) <= keys["attribute"], "the gateways' last remote configuration is on the dashboard"
    for group in ({"voltageL1", "voltageL2", "voltageL3"}, {"currentL1", "currentL2", "currentL3"},
                  {"activePowerImport"}, {"energyImport"}):
        assert group <= keys["timeseries"]
    # Fleets generated with the basic profile fill the same dashboard.
    assert keys["timeseries"] <= set(PROFILES["three_phase_basic"][0])


def test_dashboard_aliases_and_layout_are_consistent():
    data = json.loads(DASHBOARD.read_text())
    conf = data["configuration"]
    for widget in conf["widgets"].values():
        for source in widget["config"]["datasources"]:
            assert source["entityAliasId"] in conf["entityAliases"]
    placed = {wid for state in conf["states"].values() for wid in state["layouts"]["main"]["widgets"]}
    assert placed == set(conf["widgets"])
    by_type = [a["filter"] for a in conf["entityAliases"].values() if a["filter"]["type"] == "deviceType"]
    assert by_type and by_type[0]["deviceTypes"] == ["dlms-meter"]


def test_device_profile_matches_device_type_and_keys():
    data = json.loads(PROFILE.read_text())
    config, _ = load_connector_file(REPO / "config" / "dlms_connector.json")
    assert data["name"] in {d.type for d in config.devices}
    ts, attrs = shipped_keys()
    keys = profile_keys(data)
    assert keys["TIME_SERIES"] <= ts
    assert keys["CLIENT_ATTRIBUTE"] <= HEALTH | attrs
    assert {gateway_device.HEALTH_CONNECTED, "breakerState"} <= keys["CLIENT_ATTRIBUTE"]


def test_breaker_states_in_alarms_exist():
    breaker = pytest.importorskip("tb_dlms.resilience.breaker")
    states = {s.value for s in breaker.BreakerState}
    data = json.loads(PROFILE.read_text())
    for alarm in data["profileData"]["alarms"]:
        for rule in list(alarm["createRules"].values()) + [alarm["clearRule"]]:
            for cond in rule["condition"]["condition"]:
                if cond["key"]["key"] == "breakerState":
                    assert cond["predicate"]["value"]["defaultValue"] in states
