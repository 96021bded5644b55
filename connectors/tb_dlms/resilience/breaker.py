"""A circuit breaker per meter: stop hammering a meter that keeps failing, probe it now and then.

A dead meter polled on schedule costs a connect timeout plus resends every period and floods the
log; on a shared serial server it also holds the bus turn its neighbours need. After
``failure_threshold`` consecutive failed polls the breaker opens: polls are skipped until a
cool-down has passed, then one probe poll is let through (half-open). Success closes it; failure
re-opens it with the cool-down doubled (capped), plus jitter so that meters which died together
(a power cut, a serial server reboot) do not all probe in the same instant.
"""
from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass
from typing import Callable

DEFAULT_FAILURE_THRESHOLD = 3
DEFAULT_COOLDOWN_S = 15.0
DEFAULT_MAX_COOLDOWN_S = 600.0
#: Cool-downs are spread by up to this fraction either way.
JITTER = 0.2


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    cooldown_s: float = DEFAULT_COOLDOWN_S
    max_cooldown_s: float = DEFAULT_MAX_COOLDOWN_S


@dataclass(frozen=True, slots=True)
class Transition:
    """What changed, for the caller to log and publish once (never once per poll)."""

    old: BreakerState
    new: BreakerState
    consecutive_failures: int
    cooldown_s: float | None = None


class CircuitBreaker:
    def __init__(self, settings: BreakerSettings = BreakerSettings(),
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.opens = 0
        self.skipped = 0
        #: Consecutive opens without a success in between: the exponent of the cool-down.
        self._streak = 0
        self._probe_at: float | None = None

    def allow(self) -> tuple[bool, Transition | None]:
        """May a poll go out now? Moves an expired open breaker to half-open (one probe)."""
        if self.state is BreakerState.CLOSED or self.state is BreakerState.HALF_OPEN:
            return True, None
        if self._probe_at is not None and self._clock() >= self._probe_at:
            return True, self._move(BreakerState.HALF_OPEN)
        self.skipped += 1
        return False, None

    def record_success(self) -> Transition | None:
        self.consecutive_failures = 0
        self._streak = 0
        self._probe_at = None
        if self.state is BreakerState.CLOSED:
            return None
        return self._move(BreakerState.CLOSED)

    def record_failure(self) -> Transition | None:
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN or (
                self.state is BreakerState.CLOSED and self.consecutive_failures >= self.settings.failure_threshold):
            return self._open()
        return None

    def reset(self) -> Transition | None:
        """Close at once (an operator asked to reconnect: let the next poll through)."""
        self.consecutive_failures = 0
        self._streak = 0
        self._probe_at = None
        return None if self.state is BreakerState.CLOSED else self._move(BreakerState.CLOSED)

    def next_probe_in(self) -> float | None:
        if self.state is not BreakerState.OPEN or self._probe_at is None:
            return None
        return max(0.0, self._probe_at - self._clock())

    def cooldown_for(self, streak: int) -> float:
        """The un-jittered cool-down after ``streak`` consecutive opens (1 = first)."""
        s = self.settings
        return min(s.max_cooldown_s, s.cooldown_s * 2 ** max(0, streak - 1))

    def _open(self) -> Transition:
        self._streak += 1
        self.opens += 1
        base = self.cooldown_for(self._streak)
        cooldown = min(self.settings.max_cooldown_s, base * (1 + self._rng.uniform(-JITTER, JITTER)))
        self._probe_at = self._clock() + cooldown
        return self._move(BreakerState.OPEN, cooldown)

    def _move(self, new: BreakerState, cooldown: float | None = None) -> Transition:
        old, self.state = self.state, new
        return Transition(old, new, self.consecutive_failures, cooldown)

    def as_dict(self) -> dict:
        nxt = self.next_probe_in()
        return {"state": self.state.value, "consecutiveFailures": self.consecutive_failures,
                "opens": self.opens, "skippedPolls": self.skipped,
                "nextProbeInS": round(nxt, 1) if nxt is not None else None}
