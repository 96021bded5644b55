"""Misbehaviour a meter can be told to show, one request at a time.

Each fault reproduces a failure seen in the field (see the field notes): lost replies, serial
servers dropping or resetting TCP, line noise, replies cut mid-frame, meters refusing
associations, power cuts, slow meters and half-open links. A fault lasts ``count`` requests (or
AARQs for ``reject_association``) or until cleared; ``reboot`` acts once when injected.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

KINDS = (
    "no_reply",          # swallow the request, answer nothing
    "drop_connection",   # close TCP (FIN) instead of answering
    "reset",             # close TCP with RST (SO_LINGER 0)
    "garbage",           # random bytes instead of (or, before=True, before) the reply
    "half_frame",        # first half of the reply, then silence
    "reject_association",  # AARE with result rejected-permanent
    "reboot",            # state lost now: associations gone, HDLC reset, optionally closed
    "delay",             # answer ``seconds`` late
    "blackhole",         # half-open: read everything, never answer, never close
    "huge_value",        # attribute 2 of ``obis`` is a legal octet string of ``size`` bytes (block transfer)
    "endless_blocks",    # a GET of ``obis`` (WRAPPER) starts a block transfer whose last block never comes
    "malformed_value",   # attribute 2 of ``obis`` is bad A-XDR: ``shape`` short_octets or huge_array
)
#: Faults of security exchanges, not of every poll (so not among the poll faults above).
SECURITY_KINDS = (
    "refuse_key_transfer",  # global_key_transfer answered read-write-denied; the old keys stay
    "general_ciphering",  # WRAPPER: the reply comes as a general-ciphering APDU with a key the client lacks
)
MALFORMED_SHAPES = {
    # An octet string claiming 65535 bytes with two present.
    "short_octets": bytes.fromhex("0982ffff") + b"AB",
    # An array claiming 2^31 elements with one (uint8 1) present.
    "huge_array": bytes.fromhex("0184800000001101"),
}


@dataclass
class Fault:
    kind: str
    count: int | None = None
    #: Extra reply delay for ``delay``.
    seconds: float = 0.0
    #: ``reboot``: also close the TCP connections. ``garbage``: junk then the real reply.
    close: bool = True
    before: bool = False
    #: Value faults: the object (logical name, dotted) whose value is hostile, its size, its shape.
    obis: str | None = None
    size: int = 0
    shape: str = "short_octets"

    def __post_init__(self) -> None:
        if self.kind not in KINDS + SECURITY_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; known: {', '.join(KINDS + SECURITY_KINDS)}")
        if self.kind in ("huge_value", "endless_blocks", "malformed_value") and not self.obis:
            raise ValueError(f"fault {self.kind} needs obis (the object whose value is hostile)")
        if self.shape not in MALFORMED_SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; known: {', '.join(MALFORMED_SHAPES)}")

    @classmethod
    def from_dict(cls, data: dict) -> "Fault":
        return cls(
            kind=data["fault"] if "fault" in data else data["kind"],
            count=data.get("count"),
            seconds=float(data.get("seconds", 0.0)),
            close=bool(data.get("close", True)),
            before=bool(data.get("before", False)),
            obis=data.get("obis"),
            size=int(data.get("size", 0)),
            shape=data.get("shape", "short_octets"),
        )


class FaultState:
    """Active faults of one meter. Small and slotted: one per simulated meter."""

    __slots__ = ("active", "_rng")

    def __init__(self) -> None:
        self.active: dict[str, Fault] = {}
        self._rng: random.Random | None = None

    def inject(self, fault: Fault) -> None:
        self.active[fault.kind] = dataclasses.replace(fault)

    def clear(self, kind: str | None = None) -> None:
        if kind is None:
            self.active.clear()
        else:
            self.active.pop(kind, None)

    def take(self, kind: str) -> Fault | None:
        """The fault if active, consuming one use of it."""
        fault = self.active.get(kind)
        if fault is None:
            return None
        if fault.count is not None:
            fault.count -= 1
            if fault.count <= 0:
                del self.active[kind]
        return fault

    def peek(self, kind: str) -> Fault | None:
        return self.active.get(kind)

    def garbage(self, n: int) -> bytes:
        """Junk that can never be mistaken for a frame start (no 0x7E, no WRAPPER version)."""
        if self._rng is None:
            self._rng = random.Random(n)
        return bytes(self._rng.choice(range(0x80, 0xFE)) for _ in range(max(n, 8)))
