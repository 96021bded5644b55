"""The one schema of ``dlms_connector.json``: typed, validated, with every error named.

Used by the connector at start and by tests/tools that check a file before deploying it. A device
with any error is reported and left out; the others still load, so one typo does not take a
whole fleet offline. Secrets (password, keys) may be written as ``"${ENV_VAR}"``.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..protocol.readings import AttributeRef
from ..protocol.settings import (
    DEFAULT_PORTS,
    FRAME_COUNTER_OBIS,
    Authentication,
    ClockDeviation,
    Interface,
    KeyAgreement,
    MeterSettings,
    Referencing,
    ListenerSettings,
    Secret,
    Security,
    SecurityPolicy,
    SerialSettings,
    Transport,
    hdlc_server_address,
    physical_address_from_serial,
)
from ..resilience.breaker import BreakerSettings
from .errors import ConfigError, ConfigInvalid
from . import env
from .fields import Section, kind_of, show
from .gateway_json import parse_gateway_json, read_gateway_json, unparsed_text
from . import quirks
from .inbound import PushConfig, parse_listeners, parse_push
from .meter_data import DEVICE_SECTIONS, MeterDataConfig, parse_meter_data
from .secrets import clear_secrets

DEFAULT_CONNECTOR_NAME = "DLMS Connector"
DEFAULT_POLL_PERIOD_S = 30.0
#: Usual client addresses per authentication level (public client, reading client, management client).
DEFAULT_CLIENT_ADDRESS = {auth: 1 for auth in Authentication} | {Authentication.NONE: 16, Authentication.LOW: 32}
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NONE")
MASK = "***"
#: A device with no good reading for this many poll periods (at least MIN_STALE_AFTER_S) is reconnected.
STALE_AFTER_PERIODS = 5
MIN_STALE_AFTER_S = 300.0
#: Most bytes one reply may bring (all blocks). Why 64 KiB: the largest legitimate reply we ask for
#: is one profile window, and a 24 h window of a 15-min load profile with 8 columns is about 7 KB
#: (96 rows of ~70 bytes; registers are a few bytes each): 9x headroom. A meter sending a
#: multi-megabyte value (or a block transfer that never ends) then costs 64 KiB, not hundreds of MB.
DEFAULT_MAX_REPLY_BYTES = 65536
#: The polling loop counts as stuck (and is restarted) when its heartbeat is this old.
DEFAULT_LOOP_STALL_S = 30.0
#: ThingsBoard stores device names, device types (profile names) and telemetry keys in varchar(255)
#: columns (dao/.../schema-entities.sql: device.name, device.type, key_dictionary.key); a longer
#: name is refused there, so it is refused here, before a meter is polled for nothing.
MAX_NAME_CHARS = 255

TOP_KEYS = ("name", "id", "type", "logLevel", "enableRemoteLogging", "configVersion", "reportStrategy",
            "pollPeriod", "defaults", "devices", "breaker", "staleAfterS", "loopStallS", "dataDir", "listeners",
            "maxConnections", "maxNewConnectionsPerS")
DEVICE_KEYS = ("deviceName", "deviceType", "pollPeriod", "pollTimeoutMs", "reportStrategy", "connection",
               "timeseries", "attributes", "breaker", "staleAfterS", "push") + DEVICE_SECTIONS
CONNECTION_KEYS = ("host", "port", "interface", "clientAddress", "serverAddress", "serialNumber",
                   "authentication", "password", "security", "timeoutMs", "connectTimeoutMs", "retries",
                   "maxPduSize", "maxReplyBytes", "hdlc", "inactivityTimeoutS", "clockDeviation",
                   "probeTimeoutMs", "serial", "referencing", "quirks", "listener", "identity", "transport",
                   "callInWaitS") + quirks.SWITCH_KEYS
SERVER_ADDRESS_KEYS = ("logical", "physical", "size")
SECURITY_KEYS = ("systemTitle", "blockCipherKey", "authenticationKey", "frameCounterObis", "frameCounterClient",
                 "suite", "policy", "dedicatedKey", "signingKey", "meterPublicKey", "masterKey", "keyFile",
                 "keyAgreement")
HDLC_KEYS = ("maxInfoField", "windowSize")
#: The gateway's Modbus connector names these the same way; modeE and below are ours.
SERIAL_KEYS = ("port", "baudrate", "bytesize", "parity", "stopbits", "modeE", "deviceAddress", "switchDelayMs")
SERIAL_BAUDRATES = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
POINT_KEYS = ("key", "obis", "classId", "attribute", "reportStrategy")
REPORT_KEYS = ("type", "reportPeriod", "ttl")
BREAKER_KEYS = ("failureThreshold", "cooldownS", "maxCooldownS")


class ReportType(str, enum.Enum):
    ON_RECEIVED = "on_received"
    ON_CHANGE = "on_change"
    ON_REPORT_PERIOD = "on_report_period"
    ON_CHANGE_OR_REPORT_PERIOD = "on_change_or_report_period"
    DISABLED = "disabled"

    @property
    def periodic(self) -> bool:
        return self in (ReportType.ON_REPORT_PERIOD, ReportType.ON_CHANGE_OR_REPORT_PERIOD)


@dataclass(frozen=True, slots=True)
class ReportStrategySpec:
    """The gateway's report strategy, validated here so mistakes show up with the other errors."""

    type: ReportType
    report_period_ms: int | None = None
    ttl_s: int | None = None

    def as_gateway_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type.value.upper()}
        if self.report_period_ms is not None:
            out["reportPeriod"] = self.report_period_ms
        if self.ttl_s is not None:
            out["ttl"] = self.ttl_s
        return out


def public_connection(c: MeterSettings) -> dict[str, Any]:
    """A device's ``connection`` section as the file would write it, secrets masked."""
    out: dict[str, Any] = {
        "host": c.host,
        "port": c.port,
        "interface": c.interface.value,
        "clientAddress": c.client_address,
        "serverAddress": {"logical": c.logical_address},
        "authentication": c.authentication.value,
        "timeoutMs": round(c.timeout * 1000),
        "connectTimeoutMs": round(c.connect_timeout * 1000),
        "retries": c.retries,
        "maxPduSize": c.max_pdu_size,
        "maxReplyBytes": c.max_reply_bytes,
        "hdlc": {"maxInfoField": c.hdlc_max_info, "windowSize": c.hdlc_window},
        "inactivityTimeoutS": c.inactivity_timeout,
        "clockDeviation": c.clock_deviation.value,
    }
    if c.probe_timeout is not None:
        out["probeTimeoutMs"] = round(c.probe_timeout * 1000)
    if c.inbound:
        for k in ("host", "port"):
            out.pop(k)
        out.update(listener=c.listener, identity=c.identity, callInWaitS=c.call_in_wait)
    if c.transport is not Transport.TCP:
        out["transport"] = c.transport.value
    if c.serial is not None:
        del out["host"], out["port"]
        out["serial"] = _serial_dict(c.serial)
    if c.referencing is not Referencing.LN:
        out["referencing"] = c.referencing.value
    if c.quirks is not None:
        out["quirks"] = c.quirks
    if c.min_association_interval:
        out["minAssociationIntervalS"] = c.min_association_interval
    if c.no_range_deviation:
        out["noRangeDeviation"] = True
    if c.unit_overrides_by_code or c.unit_overrides_by_key:
        out["unitOverrides"] = {**{str(k): v for k, v in c.unit_overrides_by_code}, **dict(c.unit_overrides_by_key)}
    if c.serial_number is not None:
        out["serialNumber"] = c.serial_number
    elif c.physical_address is not None:
        out["serverAddress"]["physical"] = c.physical_address
    if c.address_size and c.serial_number is None:
        out["serverAddress"]["size"] = c.address_size
    if c.password is not None:
        out["password"] = MASK
    if c.security is not None:
        s = c.security
        out["security"] = {
            "systemTitle": s.client_system_title.hex(),
            "frameCounterObis": str(s.frame_counter_obis),
            "frameCounterClient": s.frame_counter_client,
            "suite": s.suite,
            "policy": s.policy.value,
            "dedicatedKey": s.dedicated_key,
            "keyAgreement": s.key_agreement.value,
        }
        for key, value in (("blockCipherKey", s.block_cipher_key), ("authenticationKey", s.authentication_key),
                           ("signingKey", s.signing_key), ("masterKey", s.master_key)):
            if value is not None:
                out["security"][key] = MASK
        if s.meter_public_key is not None:
            out["security"]["meterPublicKey"] = "(PEM)"
    return out


def _serial_dict(sp: SerialSettings) -> dict[str, Any]:
    out: dict[str, Any] = {"port": sp.port, "baudrate": sp.baudrate, "bytesize": sp.bytesize, "parity": sp.parity,
                           "stopbits": sp.stopbits, "modeE": sp.mode_e, "switchDelayMs": round(sp.switch_delay * 1000)}
    if sp.device_address:
        out["deviceAddress"] = sp.device_address
    return out


@dataclass(frozen=True, slots=True)
class PointConfig:
    """One mapped COSEM attribute: the ThingsBoard key it is published under."""

    key: str
    ref: AttributeRef
    report_strategy: ReportStrategySpec | None = None

    def to_public_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "obis": str(self.ref.obis), "classId": self.ref.class_id,
                               "attribute": self.ref.attribute}
        if self.report_strategy is not None:
            out["reportStrategy"] = self.report_strategy.as_gateway_dict()
        return out


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    index: int
    name: str
    type: str
    poll_period_s: float
    poll_timeout_s: float
    #: The ``connection`` section, parsed straight into the session's settings (named after the device).
    connection: MeterSettings
    timeseries: tuple[PointConfig, ...] = ()
    attributes: tuple[PointConfig, ...] = ()
    report_strategy: ReportStrategySpec | None = None
    breaker: BreakerSettings = BreakerSettings()
    #: Seconds without a good reading before the session is rebuilt; 0 disables.
    stale_after_s: float = MIN_STALE_AFTER_S
    #: Load profiles, event logs, clock and attribute writes (config/meter_data.py).
    meter_data: MeterDataConfig = MeterDataConfig()
    push: PushConfig | None = None

    def meter_settings(self) -> MeterSettings:
        """What a session for this meter is made with: the parsed ``connection`` section."""
        return self.connection

    def to_public_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "deviceName": self.name,
            "deviceType": self.type,
            "pollPeriod": self.poll_period_s,
            "pollTimeoutMs": round(self.poll_timeout_s * 1000),
            "connection": public_connection(self.connection),
            "timeseries": [p.to_public_dict() for p in self.timeseries],
            "attributes": [p.to_public_dict() for p in self.attributes],
            "breaker": _breaker_dict(self.breaker),
            "staleAfterS": self.stale_after_s,
        }
        if self.push is not None:
            out["push"] = self.push.to_public_dict()
        if self.report_strategy is not None:
            out["reportStrategy"] = self.report_strategy.as_gateway_dict()
        return out


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    name: str = DEFAULT_CONNECTOR_NAME
    id: str | None = None
    log_level: str = "INFO"
    enable_remote_logging: bool = False
    report_strategy: ReportStrategySpec | None = None
    poll_period_s: float = DEFAULT_POLL_PERIOD_S
    devices: tuple[DeviceConfig, ...] = field(default_factory=tuple)
    loop_stall_s: float = DEFAULT_LOOP_STALL_S
    #: Where per-meter progress (profile cursors) is kept; None: next to the gateway's storage.
    data_dir: str | None = None
    listeners: tuple[ListenerSettings, ...] = ()
    #: Limits of the TCP connections to polled meters (None: unlimited): open at once, new a second.
    max_connections: int | None = None
    max_new_connections_per_s: float | None = None

    def device(self, name: str) -> DeviceConfig | None:
        return next((d for d in self.devices if d.name == name), None)

    def to_public_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "logLevel": self.log_level, "pollPeriod": self.poll_period_s,
                               "loopStallS": self.loop_stall_s,
                               "devices": [d.to_public_dict() for d in self.devices]}
        if self.id is not None:
            out["id"] = self.id
        if self.report_strategy is not None:
            out["reportStrategy"] = self.report_strategy.as_gateway_dict()
        return out


# -- loaders ----------------------------------------------------------------------------------


def load_connector_config(raw: Any, source: str | None = None, *,
                          secrets_from_env: bool = False) -> tuple[ConnectorConfig, list[ConfigError]]:
    """Parse the connector JSON (as a dict). Returns the valid part and every problem found.

    ``source`` (the file name) is named in file-level errors. ``secrets_from_env`` (remote
    configuration on): a secret written in clear is an error and its device is left out
    (config/secrets.py).
    """
    errors: list[ConfigError] = []
    if not isinstance(raw, dict):
        where = f"{source}: " if source else ""
        errors.append(ConfigError("", f"{where}the connector configuration must be a JSON object {{...}}, got "
                                      f"{kind_of(raw)}; the gateway starts none of its meters"))
        return ConnectorConfig(), errors
    top = Section(raw, "", errors)
    top.reject_unknown(TOP_KEYS)
    name = top.text("name", DEFAULT_CONNECTOR_NAME)
    connector_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    log_level = _log_level(top)
    remote = raw.get("enableRemoteLogging", False)
    if not isinstance(remote, bool):
        top.error("enableRemoteLogging", f"must be true or false, got {show(remote)}")
        remote = False
    report = _report_strategy(top, "reportStrategy", allow_disabled=True)
    poll_period = top.number("pollPeriod", DEFAULT_POLL_PERIOD_S, positive=True)
    defaults = _defaults(top)
    breaker = _breaker(top, BreakerSettings())
    stale = top.number("staleAfterS", None, lo=0)
    loop_stall = top.number("loopStallS", DEFAULT_LOOP_STALL_S, positive=True)
    data_dir = top.text("dataDir", None)
    # Polled meters' TCP connections (the listeners have their own): unlimited unless configured,
    # since a WRAPPER meter keeps its connection between polls and a cap below the fleet starves the rest.
    max_connections = top.integer("maxConnections", None, 1, 100_000)
    max_new_per_s = top.number("maxNewConnectionsPerS", None, positive=True)
    listeners = parse_listeners(top)
    listener_names = {listener.name for listener in listeners}

    devices: list[DeviceConfig] = []
    items = top.sections("devices", required=True)
    if items is not None and not items:
        top.error("devices", "must list at least one meter, got an empty list")
    names: dict[str, int] = {}
    associations: dict[tuple[Any, ...], DeviceConfig] = {}
    for index, item in items or ():
        device = _device(index, item, defaults, poll_period, errors, breaker, stale)
        if device is None:
            continue
        listener = device.connection.listener
        if listener is not None and listener not in listener_names:
            errors.append(ConfigError("connection.listener", f"{listener!r} is not one of the connector's listeners "
                                      f"({', '.join(sorted(listener_names)) or 'none configured'}) (the device was "
                                      "skipped)", index, device.name))
            continue
        if device.name in names:
            errors.append(ConfigError("deviceName", f"duplicates devices[{names[device.name]}]; device names "
                                      "must be unique (the device was skipped)", index, device.name))
            continue
        slot, what = _association_slot(device.connection)
        other = associations.get(slot)
        if other is not None:
            errors.append(ConfigError("connection.serverAddress", f"{what} is already used by devices[{other.index}]"
                                      f' "{other.name}": both would fight over one association (the device was '
                                      "skipped)", index, device.name))
            continue
        associations[slot] = device
        names[device.name] = index
        devices.append(device)
    if secrets_from_env:
        devices = _without_clear_secrets(raw, devices, errors)
    return ConnectorConfig(name=name, id=connector_id, log_level=log_level, enable_remote_logging=remote,
                           report_strategy=report, poll_period_s=poll_period, devices=tuple(devices),
                           loop_stall_s=loop_stall, data_dir=data_dir, listeners=listeners,
                           max_connections=max_connections, max_new_connections_per_s=max_new_per_s), errors


def _without_clear_secrets(raw: dict[str, Any], devices: list[DeviceConfig],
                           errors: list[ConfigError]) -> list[DeviceConfig]:
    clear = clear_secrets(raw)
    errors.extend(clear)
    inherited = {e.path.split(".")[1] for e in clear if e.device_index is None}
    own_keys = {i: set(d["connection"]) for i, d in enumerate(raw["devices"]) if isinstance(d, dict)
                and isinstance(d.get("connection"), dict)}
    bad = {e.device_index for e in clear if e.device_index is not None}
    return [d for d in devices if d.index not in bad and inherited <= own_keys.get(d.index, set())]


def load_connector_config_strict(raw: Any) -> ConnectorConfig:
    """Like ``load_connector_config`` but any problem raises ``ConfigInvalid`` listing all of them."""
    config, errors = load_connector_config(raw)
    if errors:
        raise ConfigInvalid(errors)
    return config


def load_handed_over(config: Any, source: str | None = None, *,
                     secrets_from_env: bool = False) -> tuple[ConnectorConfig, list[ConfigError]]:
    """What the gateway hands the connector's constructor, validated without raising.

    Normally the parsed file (a dict). When simplejson could not parse the file (NaN, a trailing
    comma...), the gateway hands over the file's raw text instead (see config/gateway_json.py): it
    is parsed again here only to name the line and column; no meter starts from it.
    """
    if isinstance(config, str):
        raw, error = parse_gateway_json(unparsed_text(config), source or "the connector file")
        if error is not None:
            return ConnectorConfig(), [error]
        config = raw
    return load_connector_config(config, source, secrets_from_env=secrets_from_env)


def parse_connector_json(text: str, source: str = "the connector file") -> tuple[ConnectorConfig | None,
                                                                                list[ConfigError]]:
    """Parse as the gateway parses (config/gateway_json.py), then validate."""
    raw, error = parse_gateway_json(text, source)
    if error is not None:
        return None, [error]
    return load_connector_config(raw, source)


def load_connector_file(path: str | Path) -> tuple[ConnectorConfig | None, list[ConfigError]]:
    """Read as the gateway reads (UTF-8, BOM skipped, simplejson's rules), then validate."""
    raw, error = read_gateway_json(path)
    if error is not None:
        return None, [error]
    return load_connector_config(raw, Path(path).name)


def _association_slot(c: MeterSettings) -> tuple[tuple[Any, ...], str]:
    """What identifies one association on the wire, and how to say it in an error.

    WRAPPER: each device opens its own TCP connection, so the meter tells associations apart by the
    client/server address pair. HDLC: devices on one serial server share the bus, where the server
    address alone selects the meter (the existing rule). Host names compare case-insensitively
    (DNS does); different spellings of one address (a name and its IP) are not resolved here.
    """
    if c.inbound:
        # No host or port: a meter that calls in is told apart by the identity it gives.
        return ("inbound", c.listener, c.identity), f"identity {c.identity!r} on listener {c.listener!r}"
    host = c.host.lower()
    if c.interface is Interface.HDLC:
        where = ("serial", c.serial.port) if c.serial is not None else (host, c.port)
        return ("hdlc", *where, c.server_address), \
            f"HDLC server address {c.server_address} on {c.endpoint}"
    return ("wrapper", host, c.port, c.client_address, c.logical_address), \
        (f"WRAPPER client address {c.client_address} with server address {c.logical_address} on "
         f"{c.host}:{c.port}")


# -- sections ---------------------------------------------------------------------------------


def _log_level(top: Section) -> str:
    value = top.data.get("logLevel")
    if value is None:
        return "INFO"
    if isinstance(value, str) and value.strip().upper() in LOG_LEVELS + ("WARN",):
        level = value.strip().upper()
        return "WARNING" if level == "WARN" else level
    top.error("logLevel", f"must be one of {', '.join(LOG_LEVELS)}, got {show(value)}")
    return "INFO"


def _report_strategy(sec: Section, key: str, allow_disabled: bool = False) -> ReportStrategySpec | None:
    sub = sec.section(key)
    if sub is None:
        return None
    sub.reject_unknown(REPORT_KEYS)
    before = len(sub.errors)
    rtype = sub.choice("type", ReportType, required=True)
    if rtype is ReportType.DISABLED and not allow_disabled:
        sub.error("type", "DISABLED is only allowed for the whole connector")
    period = sub.integer("reportPeriod", None, lo=1)
    ttl = sub.integer("ttl", None, lo=1)
    if rtype is not None and rtype.periodic and period is None and not sub.has("reportPeriod"):
        sub.error("reportPeriod", f"is required (milliseconds) for type {rtype.value.upper()}")
    if len(sub.errors) != before or rtype is None:
        return None
    return ReportStrategySpec(rtype, period if rtype.periodic else None, ttl)


def _defaults(top: Section) -> dict[str, Any]:
    """Connection options shared by all devices; a wrong one is reported once, here, and dropped."""
    sub = top.section("defaults")
    if sub is None:
        return {}
    scratch: list[ConfigError] = []
    probe = Section(sub.data, "defaults", scratch)
    probe.reject_unknown(CONNECTION_KEYS)
    _connection(probe, partial=True)
    bad = {e.path.removeprefix("defaults.").split(".")[0].split("[")[0] for e in scratch}
    top.errors.extend(scratch)
    return {k: v for k, v in sub.data.items() if k not in bad}


def _merge(defaults: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _device(index: int, item: Any, defaults: dict[str, Any], poll_default: float, errors: list[ConfigError],
            breaker_default: BreakerSettings = BreakerSettings(),  # noqa: B008 - frozen: shared safely
            stale_default: float | None = None) -> DeviceConfig | None:
    if not isinstance(item, dict):
        errors.append(ConfigError("", f"must be an object, got {kind_of(item)}", index))
        return None
    raw_name = item.get("deviceName")
    name = raw_name.strip() if isinstance(raw_name, str) and raw_name.strip() else None
    if name is not None and len(name) > MAX_NAME_CHARS:
        name = name[:40] + "..."  # the error names the device without repeating 10 KB
    sec = Section(item, "", errors, index, name)
    before = len(errors)
    sec.text("deviceName", required=True, max_chars=MAX_NAME_CHARS)
    sec.reject_unknown(DEVICE_KEYS)
    device_type = sec.text("deviceType", "default", max_chars=MAX_NAME_CHARS)
    poll_period = sec.number("pollPeriod", poll_default, positive=True)
    poll_timeout_ms = sec.integer("pollTimeoutMs", None, lo=1)
    report = _report_strategy(sec, "reportStrategy")
    breaker = _breaker(sec, breaker_default)
    stale = sec.number("staleAfterS", stale_default, lo=0)

    conn_raw = item.get("connection")
    connection = None
    if conn_raw is None:
        sec.error("connection", "is required")
    elif not isinstance(conn_raw, dict):
        sec.error("connection", f"must be an object, got {kind_of(conn_raw)}")
    else:
        conn_sec = sec.child(_merge(defaults, conn_raw), "connection")
        conn_sec.reject_unknown(CONNECTION_KEYS)
        connection = _connection(conn_sec, name=name or "")

    points_before = len(errors)
    timeseries = _points(sec, "timeseries")
    attributes = _points(sec, "attributes")
    meter_data = parse_meter_data(sec)
    push = parse_push(sec)
    if not timeseries and not attributes and not meter_data and push is None and len(errors) == points_before:
        sec.error("timeseries", "and attributes are both missing or empty: the device maps nothing to read")
    if len(errors) != before or connection is None or name is None:
        return None
    poll_timeout = poll_timeout_ms / 1000 if poll_timeout_ms else max(poll_period, connection.worst_case_poll_s())
    if stale is None:
        stale = max(MIN_STALE_AFTER_S, STALE_AFTER_PERIODS * poll_period)
    return DeviceConfig(index=index, name=name, type=device_type, poll_period_s=poll_period,
                        poll_timeout_s=poll_timeout, connection=connection, timeseries=tuple(timeseries),
                        attributes=tuple(attributes), report_strategy=report, breaker=breaker,
                        stale_after_s=stale, meter_data=meter_data, push=push)


def _breaker(sec: Section, default: BreakerSettings) -> BreakerSettings:
    """Connector-level values are the defaults of each device's own ``breaker`` section."""
    sub = sec.section("breaker")
    if sub is None:
        return default
    sub.reject_unknown(BREAKER_KEYS)
    before = len(sub.errors)
    threshold = sub.integer("failureThreshold", default.failure_threshold, 1, 1000)
    cooldown = sub.number("cooldownS", default.cooldown_s, positive=True)
    cap = sub.number("maxCooldownS", default.max_cooldown_s, positive=True)
    if len(sub.errors) != before:
        return default
    if cap < cooldown:
        sub.error("maxCooldownS", f"must be at least cooldownS ({cooldown:g}), got {cap:g}")
        return default
    return BreakerSettings(threshold, cooldown, cap)


def _breaker_dict(b: BreakerSettings) -> dict[str, Any]:
    return {"failureThreshold": b.failure_threshold, "cooldownS": b.cooldown_s, "maxCooldownS": b.max_cooldown_s}


def _connection(sec: Section, partial: bool = False, name: str = "") -> MeterSettings | None:
    before = len(sec.errors)
    sec = quirks.with_preset(sec)
    listener = sec.text("listener", None)
    identity = sec.text("identity", None)
    serial_port = _serial(sec)
    on_serial = sec.has("serial")
    if listener is not None:
        for key in ("host", "port", "serial"):
            if sec.has(key):
                sec.error(key, f"does not apply to a meter that calls in (listener {listener!r}): remove it")
        if identity is None and not partial:
            sec.error("identity", f"is required with listener {listener!r}: the value the meter identifies with")
    elif identity is not None and not partial:
        sec.error("identity", "only applies with connection.listener (a meter that calls in)")
    transport = sec.choice("transport", Transport, Transport.TCP)
    call_in_wait = sec.number("callInWaitS", 0.0, lo=0)
    host = sec.text("host", required=not partial and listener is None and not on_serial)
    if listener is not None:
        host = ""
    interface = sec.choice("interface", Interface, Interface.HDLC if on_serial else Interface.WRAPPER)
    port = sec.integer("port", DEFAULT_PORTS[interface], 1, 65535)
    if on_serial and not partial:
        if interface is Interface.WRAPPER:
            sec.error("interface", "must be 'hdlc' with a serial port (WRAPPER is a TCP profile)")
        for key in ("host", "port"):
            if sec.has(key):
                sec.error(key, "conflicts with serial: a meter is reached over TCP (host, port) or a serial "
                               "port, not both")
    auth = sec.choice("authentication", Authentication, Authentication.NONE)
    hdlc_mode = interface is Interface.HDLC
    client = sec.integer("clientAddress", DEFAULT_CLIENT_ADDRESS[auth], 1, 0x7F if hdlc_mode else 0xFFFF)
    (logical, physical, size), serial = _server_address(sec, interface)
    password = sec.secret_text("password")
    if auth is Authentication.LOW and password is None and not partial and not sec.has("password"):
        sec.error("password", "is required when authentication is 'low'")
    if auth.uses_secret and auth is not Authentication.LOW and password is None and not partial \
            and not sec.has("password"):
        sec.error("password", f"is required when authentication is '{auth.value}' (the {auth.mechanism_title} secret)")
    security = _security(sec, auth)
    needs = auth in (Authentication.HIGH_GMAC, Authentication.HIGH_SHA256, Authentication.HIGH_ECDSA)
    if needs and security is None and not partial and not sec.has("security"):
        sec.error("security", f"is required when authentication is '{auth.value}'")
    timeout_ms = sec.integer("timeoutMs", 5000, 1, 600_000)
    connect_timeout_ms = sec.integer("connectTimeoutMs", 10_000, 1, 600_000)
    retries = sec.integer("retries", 2, 0, 10)
    max_pdu = sec.integer("maxPduSize", 1024, 64, 65535)
    max_reply = sec.integer("maxReplyBytes", DEFAULT_MAX_REPLY_BYTES, 1024, 16 * 1024 * 1024)
    max_info, window = 128, 1
    hdlc_sec = sec.section("hdlc")
    if hdlc_sec is not None:
        hdlc_sec.reject_unknown(HDLC_KEYS)
        max_info, window = hdlc_sec.integer("maxInfoField", 128, 32, 2030), hdlc_sec.integer("windowSize", 1, 1, 7)
    inactivity = sec.number("inactivityTimeoutS", 180.0, positive=True)
    deviation = sec.choice("clockDeviation", ClockDeviation, ClockDeviation.UTC_MINUS_LOCAL)
    probe_timeout_ms = sec.integer("probeTimeoutMs", None, 1, 600_000)
    referencing = sec.choice("referencing", Referencing, Referencing.LN)
    # security is dropped without authentication (below), so only then does its policy cipher.
    ciphered = auth is Authentication.HIGH_GMAC or (auth is not Authentication.NONE and security is not None
                                                    and security.policy.ciphered)
    if referencing is Referencing.SN and ciphered:
        # GXDLMS.getSNPdu ends every ciphered SN request with `assert not tmp` on the ciphertext
        # (gurux-dlms 1.0.203): the association fails with a bare AssertionError, so say why here.
        sec.error("referencing", f"'sn' cannot be used with ciphered APDUs (authentication '{auth.value}'"
                                 f"{'' if security is None else ', policy ' + repr(security.policy.value)}) yet: "
                                 "gurux-dlms 1.0.203 cannot cipher short-name requests")
    elif referencing is Referencing.SN and auth.is_high:
        # Pass 3 by short name is a method of the association SN (class 12, method 8) whose reply
        # carries f(CtoS); gurux 1.0.203 sends it as a WriteRequest, whose response has no data.
        sec.error("referencing", f"'sn' cannot be used with authentication '{auth.value}' yet: HLS by "
                                 "short names is not supported (use 'none' or 'low')")
    min_interval = sec.number("minAssociationIntervalS", 0.0, 0.0, 3600.0)
    no_range_dev = quirks.no_range_deviation(sec)
    by_code, by_key = quirks.unit_overrides(sec)
    if transport is Transport.UDP and (interface is Interface.HDLC or listener is not None):
        sec.error("transport", "udp is for polled WRAPPER meters (IEC 62056-47); a listener has its own transport")
    if len(sec.errors) != before or partial or (host is None and serial_port is None):
        return None
    return MeterSettings(host=host or "", port=port, serial=serial_port, interface=interface, client_address=client,
                         logical_address=logical, physical_address=physical, address_size=size, serial_number=serial,
                         # Kept with authentication 'none' too: a push-only meter's keys decrypt its pushes
                         # (the session itself ignores them without authentication).
                         authentication=auth, password=password, security=security, timeout=timeout_ms / 1000,
                         retries=retries, connect_timeout=connect_timeout_ms / 1000, max_pdu_size=max_pdu,
                         max_reply_bytes=max_reply, hdlc_max_info=max_info, hdlc_window=window,
                         inactivity_timeout=inactivity, clock_deviation=deviation,
                         probe_timeout=probe_timeout_ms / 1000 if probe_timeout_ms is not None else None,
                         referencing=referencing, quirks=quirks.preset_name(sec),
                         min_association_interval=min_interval, no_range_deviation=no_range_dev,
                         unit_overrides_by_code=tuple(sorted(by_code.items())),
                         unit_overrides_by_key=tuple(sorted(by_key.items())),
                         transport=transport, listener=listener, identity=identity,
                         call_in_wait=call_in_wait, name=name)


def _serial(sec: Section) -> SerialSettings | None:
    """``serial``: a port on the gateway (RS-485, USB adapter, optical probe with mode E)."""
    sub = sec.section("serial")
    if sub is None:
        return None
    sub.reject_unknown(SERIAL_KEYS)
    before = len(sub.errors)
    path = sub.text("port", required=True)
    baudrate = sub.integer("baudrate", 9600)
    if baudrate not in SERIAL_BAUDRATES:
        sub.error("baudrate", f"must be one of {', '.join(map(str, SERIAL_BAUDRATES))}, got {baudrate}")
    bytesize = sub.integer("bytesize", 8, 7, 8)
    parity = sub.text("parity", "N")
    if parity.upper() not in ("N", "E", "O", "M", "S"):
        sub.error("parity", f"must be N, E, O, M or S, got {show(parity)}")
    stopbits = sub.number("stopbits", 1)
    if stopbits not in (1, 1.5, 2):
        sub.error("stopbits", f"must be 1, 1.5 or 2, got {show(stopbits)}")
    mode = sub.data.get("modeE", False)
    if not isinstance(mode, bool):
        sub.error("modeE", f"must be true or false, got {show(mode)}")
    address = sub.data.get("deviceAddress", "")
    if not isinstance(address, str) or len(address) > 32 or any(c in "/!?" or not c.isprintable() for c in address):
        sub.error("deviceAddress", f"must be up to 32 printable characters without / ! ?, got {show(address)}")
    elif address and not mode:
        sub.error("deviceAddress", "only applies with modeE (it is sent in the IEC 62056-21 sign-on)")
    delay_ms = sub.integer("switchDelayMs", 300, 0, 10_000)
    if len(sub.errors) != before or path is None:
        return None
    return SerialSettings(path, baudrate, bytesize, parity.upper(), stopbits, mode, address, delay_ms / 1000)


def _server_address(sec: Section, interface: Interface) -> tuple[tuple[int, int | None, int], int | None]:
    """(logical, physical, size) of the HDLC or WRAPPER server address, and the serial number."""
    hdlc_mode = interface is Interface.HDLC
    serial = sec.integer("serialNumber", None, lo=0)
    if serial is not None and not hdlc_mode:
        sec.error("serialNumber", "only applies to interface 'hdlc' (it derives the HDLC physical address)")
    raw = sec.data.get("serverAddress")
    if raw is None:
        logical, physical, size = 1, None, 0
    elif isinstance(raw, int) and not isinstance(raw, bool):
        logical, physical, size = raw, None, 0
    elif isinstance(raw, dict):
        sub = sec.child(raw, "serverAddress")
        sub.reject_unknown(SERVER_ADDRESS_KEYS)
        logical = sub.integer("logical", 1, 0, 0x3FFF if hdlc_mode else 0xFFFF)
        physical = sub.integer("physical", None, 0, 0x3FFF)
        size = sub.integer("size", 0)
        if size not in (0, 1, 2, 4):
            sub.error("size", f"must be 1, 2 or 4 (bytes), got {size}")
            size = 0
        if not hdlc_mode and (physical is not None or size):
            sub.error(None, "physical and size only apply to interface 'hdlc'; WRAPPER uses the logical address")
    else:
        sec.error("serverAddress", f"must be an integer (logical address) or an object, got {show(raw)}")
        return (1, None, 0), serial
    if serial is not None and hdlc_mode:
        if physical is not None:
            sec.error("serialNumber", "conflicts with serverAddress.physical: give one or the other")
        else:
            physical, size = physical_address_from_serial(serial), size or 4
    if hdlc_mode:
        if size == 1 and physical is not None:
            sec.error("serverAddress.size", "1 cannot carry a physical address: use 2 or 4")
        elif size == 1 and logical > 0x7F:
            sec.error("serverAddress.logical", f"must be 0..127 with one-byte addressing, got {logical}")
        else:
            try:
                hdlc_server_address(logical, physical, size)
            except ValueError as exc:
                sec.error("serverAddress", str(exc))
            if size == 2 and physical is not None and (logical > 0x7F or physical > 0x7F):
                sec.error("serverAddress", "two-byte addressing allows logical and physical 0..127: use size 4")
    return (logical, physical, size), serial


def _security(sec: Section, auth: Authentication = Authentication.HIGH_GMAC) -> Security | None:
    sub = sec.section("security")
    if sub is None:
        return None
    sub.reject_unknown(SECURITY_KEYS)
    before = len(sub.errors)
    suite = sub.integer("suite", 0, 0, 2)
    default_policy = SecurityPolicy.AUTHENTICATION_ENCRYPTION if auth in (
        Authentication.HIGH_GMAC, Authentication.HIGH_ECDSA) else SecurityPolicy.NONE
    if sub.has("blockCipherKey") and not sub.has("policy"):
        default_policy = SecurityPolicy.AUTHENTICATION_ENCRYPTION  # keys given: they are for ciphering
    policy = sub.choice("policy", SecurityPolicy, default_policy)
    size = 32 if suite == 2 else 16
    keys_needed = policy.ciphered or auth is Authentication.HIGH_GMAC
    title = sub.hex_bytes("systemTitle", 8, required=True)
    source = key_source(sub.data)
    if sub.has("keyFile"):
        if sub.has("blockCipherKey") or sub.has("authenticationKey"):
            sub.error("keyFile", "replaces blockCipherKey and authenticationKey: give one or the other")
        bck, ak = _key_file(sub, size)
    else:
        bck = sub.hex_bytes("blockCipherKey", size, secret=True, required=keys_needed)
        ak = sub.hex_bytes("authenticationKey", size, secret=True, required=keys_needed)
    master = sub.hex_bytes("masterKey", size, secret=True)
    fc_obis = sub.obis("frameCounterObis", FRAME_COUNTER_OBIS)
    fc_client = sub.integer("frameCounterClient", 16, 1, 0xFFFF)
    dedicated = sub.data.get("dedicatedKey", False)
    if not isinstance(dedicated, bool):
        sub.error("dedicatedKey", f"must be true or false, got {show(dedicated)}")
        dedicated = False
    signing = meter_key = None
    agreement = sub.choice("keyAgreement", KeyAgreement, KeyAgreement.NONE)
    if agreement is not KeyAgreement.NONE:
        # The agreement is signed (ECDSA) and its key ciphers APDUs: nothing to agree without both.
        if suite == 0:
            sub.error("keyAgreement", f"'{agreement.value}' needs security suite 1 (P-256) or 2 (P-384)")
        elif not policy.ciphered:
            sub.error("keyAgreement", f"'{agreement.value}' agrees a ciphering key: policy must not be 'none'")
    if auth is Authentication.HIGH_ECDSA or agreement is not KeyAgreement.NONE:
        if suite == 0:
            if auth is Authentication.HIGH_ECDSA:
                sub.error("suite", "must be 1 (P-256) or 2 (P-384) for authentication 'high_ecdsa'")
        else:
            signing = _pem(sub, "signingKey", suite, private=True)
            meter_key = _pem(sub, "meterPublicKey", suite, private=False)
    if len(sub.errors) != before or title is None:  # None: its error is recorded
        return None
    return Security(title, bck, ak, fc_obis, fc_client, suite=suite, policy=policy, dedicated_key=dedicated,
                    signing_key=Secret(signing) if signing is not None else None, meter_public_key=meter_key,
                    master_key=master, key_source=source, key_agreement=agreement)


def key_source(security: dict[str, Any]) -> str | None:
    """Where a ``security`` section takes its global keys from: "file:<path>", "env:<BCK>,<AK>"."""
    path = security.get("keyFile")
    if isinstance(path, str):
        try:
            path = env.resolve(path)
        except env.UnsetVariable:
            return None
        return "file:" + str(Path(path).expanduser().resolve()) if path else None
    refs = [env.reference(security.get("blockCipherKey")), env.reference(security.get("authenticationKey"))]
    if refs[0] is not None and refs[1] is not None:
        return f"env:{refs[0].name},{refs[1].name}"
    return None


def read_key_file(path: str | Path, size: int) -> tuple[Secret, Secret]:
    """A key file: JSON {"blockCipherKey": hex, "authenticationKey": hex}; ValueError naming the
    file and the field, never a key."""
    try:
        data = json.loads(Path(path).expanduser().read_text())
    except OSError as exc:
        raise ValueError(f"cannot read key file {str(path)!r}: {exc.strerror or exc}") from None
    except ValueError:
        raise ValueError(f"key file {str(path)!r} is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError(f"key file {str(path)!r} must hold a JSON object")
    out = []
    for name in ("blockCipherKey", "authenticationKey"):
        value = data.get(name)
        try:
            raw = bytes.fromhex(value) if isinstance(value, str) else None
        except ValueError:
            raw = None
        if raw is None or len(raw) != size:
            raise ValueError(f"key file {str(path)!r}: {name} must be {size} bytes hex ({2 * size} hex digits)")
        out.append(Secret(raw))
    return out[0], out[1]


def _key_file(sub: Section, size: int) -> tuple[Secret | None, Secret | None]:
    """A path (or ``${VAR}`` holding one); the path is no secret, the file's keys are."""
    path = sub._secret_raw("keyFile")
    if path is None:
        return None, None
    try:
        return read_key_file(path, size)
    except ValueError as exc:
        sub.error("keyFile", str(exc))
        return None, None


def _pem(sub: Section, key: str, suite: int, private: bool) -> bytes | None:
    """A PEM key: a file path on the gateway, or ``${VAR}`` (or a literal) holding the PEM itself.

    Checked here (curve, kind) so that a wrong key is a config error naming the field, not a
    failed association later; the key's bytes never appear in a message.
    """
    from ..protocol import security_fixes

    value = sub._secret_raw(key, required=True)
    if value is None:
        return None
    if not isinstance(value, str):
        sub.error(key, f"must be a PEM file path or \"${{ENV_VAR}}\" holding the PEM, got {kind_of(value)}")
        return None
    if "-----BEGIN" in value:
        data = value.encode()
    else:
        try:
            data = Path(value).expanduser().read_bytes()
        except OSError as exc:
            sub.error(key, f"cannot read the key file {value!r}: {exc.strerror or exc}")
            return None
    try:
        if private:
            security_fixes.load_private_key(data, suite)
        else:
            security_fixes.load_public_key(data, suite)
    except ValueError as exc:
        sub.error(key, str(exc))
        return None
    return data


def _points(sec: Section, key: str) -> list[PointConfig]:
    items = sec.sections(key)
    points: list[PointConfig] = []
    seen: dict[str, int] = {}
    for i, item in items or ():
        if not isinstance(item, dict):
            sec.error(f"{key}[{i}]", f"must be an object with key and obis, got {kind_of(item)}")
            continue
        sub = sec.child(item, f"{key}[{i}]")
        before = len(sub.errors)
        sub.reject_unknown(POINT_KEYS)
        name = sub.text("key", required=True, max_chars=MAX_NAME_CHARS)
        obis = sub.obis("obis", required=True)
        class_id = sub.class_id()
        attribute = sub.integer("attribute", 2, 1, 127)
        report = _report_strategy(sub, "reportStrategy")
        if name is not None and name in seen:
            sub.error("key", f"{name!r} is already used by {key}[{seen[name]}]")
        if len(sub.errors) != before or name is None or obis is None:
            continue
        seen[name] = i
        points.append(PointConfig(name, AttributeRef(obis, class_id, attribute), report))
    return points
