"""Per-meter counters: what an operator asks for first when a meter misbehaves."""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any


def percentile(values: "list[float]", q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


@dataclass
class SessionStats:
    round_trips: int = 0
    resends: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    discarded_bytes: int = 0
    late_replies: int = 0
    associations: int = 0
    polls_ok: int = 0
    polls_failed: int = 0
    readings: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    #: Wall seconds of recent polls (bounded window for percentiles).
    poll_latencies: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    last_error: str | None = None

    def record_poll(self, seconds: float, ok: bool) -> None:
        self.poll_latencies.append(seconds)
        if ok:
            self.polls_ok += 1
        else:
            self.polls_failed += 1

    def record_error(self, kind: str, message: str) -> None:
        self.errors[kind] += 1
        self.last_error = message

    def as_dict(self) -> dict[str, Any]:
        lat = list(self.poll_latencies)
        total = self.polls_ok + self.polls_failed
        p50, p95 = percentile(lat, 0.5), percentile(lat, 0.95)
        return {
            "pollsOk": self.polls_ok,
            "pollsFailed": self.polls_failed,
            "successRate": round(self.polls_ok / total, 4) if total else None,
            "readings": self.readings,
            "roundTrips": self.round_trips,
            "resends": self.resends,
            "bytesSent": self.bytes_sent,
            "bytesReceived": self.bytes_received,
            "discardedBytes": self.discarded_bytes,
            "lateReplies": self.late_replies,
            "associations": self.associations,
            "errors": dict(self.errors),
            "lastError": self.last_error,
            "lastPollMs": round(lat[-1] * 1000, 1) if lat else None,
            "pollP50Ms": round(p50 * 1000, 1) if p50 is not None else None,
            "pollP95Ms": round(p95 * 1000, 1) if p95 is not None else None,
        }
