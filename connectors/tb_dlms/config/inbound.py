"""Configuration of meters that call in: connector-level ``listeners`` and a device's ``push``.

Kept out of schema.py so that the polled-meter schema stays readable; schema.py calls these.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..protocol.readings import AttributeRef
from ..protocol.settings import DEFAULT_PORTS, LOGICAL_DEVICE_NAME, IdentifyBy, Interface, ListenerSettings, Transport
from .fields import Section, kind_of, show

LISTENER_KEYS = ("name", "port", "host", "interface", "transport", "identifyBy", "maxConnections",
                 "maxNewConnectionsPerS", "idleTimeoutS", "identifyTimeoutS", "timeoutMs", "reconnectLimit")
IDENTIFY_KEYS = ("obis", "classId", "attribute", "clientAddress", "serverAddress")
RECONNECT_KEYS = ("connections", "windowS", "backoffS")
PUSH_KEYS = ("systemTitle", "objects")
PUSH_OBJECT_KEYS = ("key", "obis", "classId", "attribute", "scaler")
#: Alliander's limits for a cellular head-end (connections open at once, new connections a second).
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_MAX_NEW_PER_S = 30.0


@dataclass(frozen=True, slots=True)
class PushObject:
    key: str
    ref: AttributeRef
    #: Power of ten applied to the pushed value; None: the scaler read in the last association.
    scaler: int | None = None


@dataclass(frozen=True, slots=True)
class PushConfig:
    objects: tuple[PushObject, ...]
    #: The meter's system title (ciphered pushes are matched by it); None: its identity when that is one.
    system_title: bytes | None = None

    def to_public_dict(self) -> dict[str, Any]:
        objects: list[dict[str, Any]] = []
        for o in self.objects:
            item: dict[str, Any] = {"key": o.key, "obis": str(o.ref.obis), "classId": o.ref.class_id,
                                    "attribute": o.ref.attribute}
            if o.scaler is not None:
                item["scaler"] = o.scaler
            objects.append(item)
        out: dict[str, Any] = {"objects": objects}
        if self.system_title is not None:
            out["systemTitle"] = self.system_title.hex()
        return out


def parse_listeners(top: Section) -> tuple[ListenerSettings, ...]:
    out: list[ListenerSettings] = []
    names: set[str] = set()
    ports: dict[tuple[str, int], str] = {}
    for i, item in top.sections("listeners") or ():
        if not isinstance(item, dict):
            top.error(f"listeners[{i}]", f"must be an object, got {kind_of(item)}")
            continue
        sec = top.child(item, f"listeners[{i}]")
        before = len(sec.errors)
        sec.reject_unknown(LISTENER_KEYS)
        name = sec.text("name", required=True)
        port = sec.integer("port", DEFAULT_PORTS[Interface.WRAPPER], 1, 65535)
        host = sec.text("host", "0.0.0.0")
        interface = sec.choice("interface", Interface, Interface.WRAPPER)
        transport = sec.choice("transport", Transport, Transport.TCP)
        if transport is Transport.UDP and interface is Interface.HDLC:
            sec.error("transport", "udp carries the WRAPPER profile only (IEC 62056-47)")
        identify = _identify_by(sec)
        max_conn = sec.integer("maxConnections", DEFAULT_MAX_CONNECTIONS, 1, 100_000)
        max_new = sec.number("maxNewConnectionsPerS", DEFAULT_MAX_NEW_PER_S, positive=True)
        idle = sec.number("idleTimeoutS", 600.0, positive=True)
        ident_timeout = sec.number("identifyTimeoutS", 30.0, positive=True)
        timeout_ms = sec.integer("timeoutMs", 5000, 1, 600_000)
        loop = sec.section("reconnectLimit")
        limit, window, backoff = 10, 60.0, 60.0
        if loop is not None:
            loop.reject_unknown(RECONNECT_KEYS)
            limit = loop.integer("connections", limit, 1, 10_000)
            window = loop.number("windowS", window, positive=True)
            backoff = loop.number("backoffS", backoff, positive=True)
        if name in names:
            sec.error("name", f"{name!r} is already the name of another listener")
        if (host, port) in ports and name is not None:
            sec.error("port", f"{host}:{port} is already used by listener {ports[(host, port)]!r}")
        if len(sec.errors) != before or name is None:
            continue
        names.add(name)
        ports[(host, port)] = name
        out.append(ListenerSettings(name, port, host, interface, transport, identify, max_conn, max_new, idle,
                                    ident_timeout, timeout_ms / 1000, 1, limit, window, backoff))
    return tuple(out)


def _identify_by(sec: Section) -> IdentifyBy:
    raw = sec.data.get("identifyBy")
    if raw is None:
        return IdentifyBy()
    if raw == "systemTitle":
        return IdentifyBy(system_title=True)
    if not isinstance(raw, dict):
        sec.error("identifyBy", f'must be "systemTitle" or an object {{"obis", "classId", "clientAddress"}}, '
                                f"got {show(raw)}")
        return IdentifyBy()
    sub = sec.child(raw, "identifyBy")
    sub.reject_unknown(IDENTIFY_KEYS)
    obis = sub.obis("obis")
    return IdentifyBy(str(obis) if obis is not None else LOGICAL_DEVICE_NAME, sub.integer("classId", 1, 1, 0xFFFF),
                      sub.integer("attribute", 2, 1, 255), sub.integer("clientAddress", 16, 1, 0xFFFF),
                      sub.integer("serverAddress", 1, 0, 0x3FFF))


def parse_push(sec: Section) -> PushConfig | None:
    sub = sec.section("push")
    if sub is None:
        return None
    sub.reject_unknown(PUSH_KEYS)
    title = sub.hex_bytes("systemTitle", 8)
    objects: list[PushObject] = []
    keys: set[str] = set()
    for i, item in sub.sections("objects", required=True) or ():
        if not isinstance(item, dict):
            sub.error(f"objects[{i}]", f"must be an object, got {kind_of(item)}")
            continue
        o = sub.child(item, f"objects[{i}]")
        o.reject_unknown(PUSH_OBJECT_KEYS)
        key = o.text("key", required=True)
        obis = o.obis("obis", required=True)
        class_id = o.integer("classId", 3, 1, 0xFFFF)
        attribute = o.integer("attribute", 2, 1, 255)
        scaler = o.integer("scaler", None, -20, 20)
        if key in keys:
            o.error("key", f"{key!r} is already mapped by another push object")
        if key is None or obis is None or key in keys:
            continue
        keys.add(key)
        objects.append(PushObject(key, AttributeRef(obis, class_id, attribute), scaler))
    if not objects:
        sub.error("objects", "must list the pushed objects in push order")
        return None
    return PushConfig(tuple(objects), title)
