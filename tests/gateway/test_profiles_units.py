"""The pieces that decide "sent exactly once": cursor filtering, the cursor file, event timestamps, config."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tb_dlms.config import load_connector_config
from tb_dlms.config.meter_data import ATTRIBUTE_UPDATE_KEYS, CLOCK_KEYS, EVENT_LOG_KEYS, PROFILE_KEYS, EventLogConfig, \
    ProfileConfig
from tb_dlms.gateway.cursors import Cursor, CursorStore, cursor_file
from tb_dlms.gateway.events import event_name
from tb_dlms.gateway.profiles import ArchiveReader, Collected, EventColumns, after_cursor, cursor_after
from tb_dlms.protocol.obis import ObisCode
from tb_dlms.protocol.profile import CaptureObject, ProfileData, ProfileRow
from tb_dlms.protocol.readings import AttributeRef

LOG = logging.getLogger("test.dlms.profiles")
LOAD = "1.0.99.1.0.255"
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "dlms_connector.json.example"


def rows(*stamps):
    return [ProfileRow(ts, (ts, i)) for i, ts in enumerate(stamps)]


def test_after_cursor_skips_delivered_rows_including_same_second_ones():
    got = rows(100, 200, 200, 200, 300)
    assert [r.timestamp_ms for r in after_cursor(got, None)] == [100, 200, 200, 200, 300]
    assert [r.timestamp_ms for r in after_cursor(got, Cursor(200, 2))] == [200, 300]
    assert after_cursor(got, Cursor(300, 1)) == []
    # A clock set back leaves the buffer out of order: deliver in time order.
    assert [r.timestamp_ms for r in after_cursor(rows(500, 400, 450), Cursor(300))] == [400, 450, 500]
    assert after_cursor([ProfileRow(None, ())], None) == []


def test_cursor_after_counts_rows_at_the_last_timestamp():
    assert cursor_after(rows(100, 200, 200), None) == Cursor(200, 2)
    assert cursor_after(rows(200), Cursor(200, 2)) == Cursor(200, 3)
    assert cursor_after(rows(300), Cursor(200, 2)) == Cursor(300, 1)


def test_events_in_the_same_second_keep_distinct_timestamps_across_reads():
    config = EventLogConfig(ObisCode.parse("0.0.99.98.0.255"), 24, 7, 300, names=((70, "Remote disconnection"),))
    columns = [CaptureObject(AttributeRef.of("0.0.1.0.0.255", 8, 2)),
               CaptureObject(AttributeRef.of("0.0.96.11.0.255", 1, 2))]
    events = EventColumns(config, columns)
    first = events.entries([ProfileRow(1000, (1000, 1)), ProfileRow(1000, (1000, 2))], None)
    assert [(e.ts, {k.key: v for k, v in e.values.items()}) for e in first] == [
        (1000, {"eventCode": 1, "eventName": "Power down"}), (1001, {"eventCode": 2, "eventName": "Power up"})]
    # The third event of that second, read later: continues after the two already delivered.
    later = events.entries([ProfileRow(1000, (1000, 70))], Cursor(1000, 2))
    assert [(e.ts, e.values[events.name_key]) for e in later] == [(1002, "Remote disconnection")]
    assert event_name(4) == "Clock adjusted (old date/time)" and event_name(999) == "Event 999"


def test_cursor_store_persists_only_settled_cursors_atomically(tmp_path):
    now = [0.0]
    path = tmp_path / "d" / "c.cursors.json"
    store = CursorStore(path, LOG, settle_s=3, clock=lambda: now[0])
    store.advance("M", "1.0.99.1.0.255", Cursor(1000))
    assert store.get("M", "1.0.99.1.0.255") == Cursor(1000)
    assert not store.flush() and not path.exists()  # just handed over: may still be in the gateway's queue
    now[0] = 5
    store.advance("M", "1.0.99.1.0.255", Cursor(2000))
    assert not store.flush(gateway_running=False)  # a stopping gateway drops its queue
    assert store.flush()
    assert json.loads(path.read_text())["meters"]["M"]["1.0.99.1.0.255"] == {"ts": 1000, "atTs": 1}
    now[0] = 10
    assert store.flush()
    assert CursorStore(path, LOG).get("M", "1.0.99.1.0.255") == Cursor(2000)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left behind


def test_unreadable_cursor_file_is_kept_aside_and_backfill_starts_over(tmp_path, caplog):
    path = tmp_path / "c.cursors.json"
    path.write_text("{not json")
    store = CursorStore(path, LOG)
    assert store.get("M", "x") is None
    assert any(p.name.startswith("c.cursors.json.corrupt-") for p in tmp_path.iterdir())
    assert "unreadable" in caplog.text


NOW_MS = 1_790_000_000_000
GOOD = {"ts": NOW_MS, "atTs": 1}


@pytest.mark.parametrize("content,words,kept", [
    ({"version": 1, "meters": {"M": {LOAD: {"ts": 4_102_444_800_000 * 10}}}}, ["M", LOAD, "ahead", "horizon"], None),
    ({"version": 1, "meters": {"M": {LOAD: {"ts": "1790000000000"}}}}, ["M", LOAD, "'1790000000000'", "horizon"], None),
    ({"version": 1, "meters": {"M": {LOAD: {"ts": 1.79e12}}}}, ["M", LOAD, "whole number", "horizon"], None),
    ({"version": 1, "meters": {"M": {LOAD: {"ts": True}}}}, ["M", LOAD, "whole number"], None),
    ({"version": 1, "meters": {"M": {LOAD: {"ts": -5}}}}, ["M", LOAD, "negative", "horizon"], None),
    ({"version": 1, "meters": {"M": {LOAD: [NOW_MS]}}}, ["M", LOAD, "list", "horizon"], None),
    ({"version": 1, "meters": {"M": {LOAD: {"ts": NOW_MS, "atTs": "x"}}}}, ["M", LOAD, "atTs", "again"],
     Cursor(NOW_MS, 0)),
    ({"version": 1, "meters": {"M": [GOOD]}}, ["'M'", "list", "horizon"], None),
    ({"version": 1, "meters": [{"M": {LOAD: GOOD}}]}, ['"meters"', "list", "horizon", "kept as"], None),
    ({"version": 2, "meters": {"M": {LOAD: GOOD}}}, ["version 2", "version 1", "horizon", "kept as"], None),
    ({"meters": {"M": {LOAD: GOOD}}}, ["version None", "kept as"], None),
    ([GOOD], ["list", "kept as"], None),
])
def test_untrustworthy_cursor_is_reported_with_what_is_done_instead(tmp_path, caplog, content, words, kept):
    path = tmp_path / "c.cursors.json"
    other = {"N": {LOAD: GOOD}}
    if isinstance(content, dict) and isinstance(content.get("meters"), dict):
        content["meters"].update(other)
    path.write_text(json.dumps(content))
    with caplog.at_level(logging.WARNING):
        store = CursorStore(path, LOG)
    assert store.get("M", LOAD) == kept
    line = next((r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING), "")
    for word in words:
        assert word in line, line
    if isinstance(content, dict) and content.get("version") == 1 and isinstance(content.get("meters"), dict):
        assert store.get("N", LOAD) == Cursor(NOW_MS)  # one bad entry spoils no other meter
    if "kept as" in words:
        assert any(p.name.startswith("c.cursors.json.corrupt-") for p in tmp_path.iterdir())


def test_a_valid_cursor_file_loads_without_a_word(tmp_path, caplog):
    path = tmp_path / "c.cursors.json"
    path.write_text(json.dumps({"version": 1, "meters": {"M": {LOAD: {"ts": NOW_MS, "atTs": 2}}}}))
    with caplog.at_level(logging.WARNING):
        assert CursorStore(path, LOG).get("M", LOAD) == Cursor(NOW_MS, 2)
    assert not caplog.records


def test_cursor_file_location():
    class Settings:
        data_folder_path = "/var/lib/tb/data/"

    class Storage:
        settings = Settings()

    class Gateway:
        _event_storage = Storage()

    assert cursor_file(Gateway(), None, "DLMS Connector") == Path(
        "/var/lib/tb/data/tb_dlms/DLMS_Connector.cursors.json")
    assert cursor_file(Gateway(), "/srv/x", "c") == Path("/srv/x/c.cursors.json")
    assert cursor_file(object(), None, "c") == Path("data/tb_dlms/c.cursors.json")


# -- configuration ------------------------------------------------------------------------------


def device(**extra):
    return {"deviceName": "M", "connection": {"host": "h"}, **extra}


@pytest.mark.parametrize("extra,path,words", [
    ({"profiles": [{"obis": "1.0.99.1.0.255"}]}, "profiles[0].columns", "is required"),
    ({"profiles": [{"obis": "1.0.99.1.0.255", "columns": [None, 3]}]}, "profiles[0].columns[1]", "telemetry key"),
    ({"profiles": [{"obis": "1.0.99.1.0.255", "columns": {"1.0.1.8.0.255": "a", "1.0.2.8.0.255": "a"}}]},
     "profiles[0].columns.1.0.2.8.0.255", "used for two"),
    ({"profiles": [{"obis": "1.0.99.1.0.255", "columns": [None, "a"], "windowHours": 0}]},
     "profiles[0].windowHours", "positive"),
    ({"profiles": [{"obis": "1.0.99.1.0.255", "columns": [None, "a"], "localTimeRange": True}]},
     "profiles[0].utcOffsetMinutes", "required"),
    ({"profiles": [{"obis": "1.0.99.1.0.255", "columns": [None, "a"], "readEvry": 5}]},
     "profiles[0].readEvry", "readEvery"),
    ({"eventLogs": [{"obis": "0.0.99.98.0.255", "names": {"x": "y"}}]}, "eventLogs[0].names.x", "event code"),
    ({"eventLogs": [{"obis": "1.0.99.1.0.255"}], "profiles": [{"obis": "1.0.99.1.0.255", "columns": [None, "a"]}]},
     "eventLogs[0].obis", "already read"),
    ({"clock": {"autoSyncThresholdS": -1}}, "clock.autoSyncThresholdS", "positive"),
    ({"clock": "yes"}, "clock", "object"),
    ({"attributeUpdates": [{"key": "k", "obis": "0.0.17.0.0.255"}]}, "attributeUpdates[0].type", "required"),
    ({"attributeUpdates": [{"key": "k", "obis": "0.0.96.3.10.255", "method": {"on": 200}}]},
     "attributeUpdates[0].method.on", "1..127"),
    ({"attributeUpdates": [{"key": "k", "obis": "0.0.96.3.10.255", "method": 1, "attribute": 2}]},
     "attributeUpdates[0].attribute", "exclude"),
])
def test_configuration_errors_name_device_and_field(extra, path, words):
    _, errors = load_connector_config({"devices": [device(**extra)]})
    assert errors, extra
    text = [str(e) for e in errors]
    assert any(t.startswith(f'devices[0] "M": {path} ') and words in t for t in text), text


def test_device_with_only_a_profile_is_valid_and_data_dir_is_read():
    cfg, errors = load_connector_config({"dataDir": "/tmp/x", "devices": [device(
        profiles=[{"obis": "1.0.99.1.0.255", "columns": [None, "energyImport"]}])]})
    assert errors == [] and cfg.data_dir == "/tmp/x"
    assert cfg.devices[0].meter_data.profiles[0].columns_by_index == ((1, "energyImport"),)


def test_example_documents_every_meter_data_key(monkeypatch, tmp_path):
    monkeypatch.setenv("METER4_PASSWORD", "12345678")
    monkeypatch.setenv("METER5_BLOCK_CIPHER_KEY", "000102030405060708090a0b0c0d0e0f")
    monkeypatch.setenv("METER5_AUTHENTICATION_KEY", "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf")
    from tb_dlms.simulator import keys  # Meters 6 and 7: HLS-ECDSA and a key file (issue 15)

    key = "000102030405060708090a0b0c0d0e0f"
    for name in ("METER6_BLOCK_CIPHER_KEY", "METER6_AUTHENTICATION_KEY", "METER6_MASTER_KEY", "METER7_MASTER_KEY"):
        monkeypatch.setenv(name, key)
    monkeypatch.setenv("METER6_SIGNING_KEY", keys.private_pem(keys.CLIENT, 1).decode())
    monkeypatch.setenv("METER6_PUBLIC_KEY", keys.public_pem("meter 6", 1).decode())
    (tmp_path / "k.json").write_text(json.dumps({"blockCipherKey": key, "authenticationKey": key}))
    monkeypatch.setenv("METER7_KEY_FILE", str(tmp_path / "k.json"))
    monkeypatch.setenv("METER7_HLS_SECRET", "a secret")
    raw = json.loads(EXAMPLE.read_text())
    cfg, errors = load_connector_config(raw)
    assert [str(e) for e in errors] == []
    used: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            used.update(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(raw)
    assert set(PROFILE_KEYS + EVENT_LOG_KEYS + CLOCK_KEYS + ATTRIBUTE_UPDATE_KEYS) - used == set()
    assert any(d.meter_data.profiles for d in cfg.devices)


def test_rewind_goes_back_to_the_newest_cursor_not_ahead_of_the_meter_clock(tmp_path):
    config = ProfileConfig(ObisCode.parse(LOAD), 24, 7, 900)
    store = CursorStore(tmp_path / "c.cursors.json", LOG, settle_s=0)
    reader = ArchiveReader("M", config, store, LOG)
    columns = [CaptureObject(AttributeRef.of("0.0.1.0.0.255", 8, 2)),
               CaptureObject(AttributeRef.of("1.0.1.8.0.255", 3, 2))]
    for stamps in ((1000, 2000), (90_000,), (91_000,)):  # the last two stamped after a jump ahead
        reader._hand_over(ProfileData(LOAD, columns, rows(*stamps)), lambda entries: True, Collected())
    assert reader.cursor == Cursor(91_000)
    assert reader.rewind(meter_now_ms=5000) == Cursor(2000) and reader.cursor == Cursor(2000)
    # Nothing known that is not ahead (e.g. after a restart): back to the horizon.
    assert reader.rewind(meter_now_ms=500) is None and reader.cursor is None
