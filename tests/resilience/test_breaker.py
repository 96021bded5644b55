"""The breaker's state machine under a hand-driven clock: no sleeps, no randomness left to chance."""
from __future__ import annotations

import random

import pytest

from tb_dlms.resilience.breaker import JITTER, BreakerSettings, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class NoJitter(random.Random):
    def uniform(self, a, b):
        return 0.0


def make(threshold=3, cooldown=15.0, cap=600.0, rng=None):
    clock = Clock()
    return CircuitBreaker(BreakerSettings(threshold, cooldown, cap), clock, rng or NoJitter()), clock


def fail(b, n):
    return [b.record_failure() for _ in range(n)]


def test_opens_after_threshold_consecutive_failures_only():
    b, _ = make()
    assert fail(b, 2) == [None, None]
    assert b.record_success() is None  # a success in between starts the count again
    changes = fail(b, 3)
    assert changes[:2] == [None, None]
    assert changes[2].old is BreakerState.CLOSED and changes[2].new is BreakerState.OPEN
    assert changes[2].consecutive_failures == 3 and changes[2].cooldown_s == 15
    assert (b.state, b.opens) == (BreakerState.OPEN, 1)


def test_open_skips_until_cooldown_then_one_half_open_probe():
    b, clock = make()
    fail(b, 3)
    for _ in range(4):
        assert b.allow() == (False, None)
        clock.now += 3
    assert b.skipped == 4 and b.next_probe_in() == pytest.approx(3)
    clock.now += 3
    allowed, change = b.allow()
    assert allowed and change.new is BreakerState.HALF_OPEN
    assert b.allow() == (True, None)  # still half-open: the probe itself is running
    change = b.record_success()
    assert change.old is BreakerState.HALF_OPEN and change.new is BreakerState.CLOSED
    assert b.as_dict() == {"state": "closed", "consecutiveFailures": 0, "opens": 1, "skippedPolls": 4,
                           "nextProbeInS": None}


def test_failed_probe_reopens_with_doubled_cooldown_up_to_the_cap():
    b, clock = make(cooldown=15, cap=100)
    fail(b, 3)
    cooldowns = []
    for _ in range(5):
        clock.now += 1000
        assert b.allow()[1].new is BreakerState.HALF_OPEN
        change = b.record_failure()  # one failed probe is enough to re-open
        assert change.new is BreakerState.OPEN
        cooldowns.append(change.cooldown_s)
    assert cooldowns == [30, 60, 100, 100, 100]
    assert b.opens == 6
    clock.now += 1000
    b.allow()
    b.record_success()
    assert b.cooldown_for(1) == 15 and b.record_failure() is None  # back to the threshold and first cool-down


def test_jitter_spreads_cooldowns_within_bounds():
    cooldowns = set()
    for seed in range(50):
        b, _ = make(rng=random.Random(seed))
        cooldowns.add(fail(b, 3)[-1].cooldown_s)
    assert len(cooldowns) > 40
    assert all(15 * (1 - JITTER) <= c <= 15 * (1 + JITTER) for c in cooldowns)


def test_jitter_never_exceeds_the_cap():
    b, clock = make(cooldown=10, cap=10, rng=random.Random(1))
    for _ in range(20):
        change = fail(b, 3)[-1] if b.state is BreakerState.CLOSED else b.record_failure()
        assert change.cooldown_s <= 10
        clock.now += 100
        b.allow()


def test_reset_closes_at_once():
    b, _ = make(threshold=1)
    b.record_failure()
    assert b.reset().new is BreakerState.CLOSED
    assert b.allow() == (True, None) and b.reset() is None


def test_as_dict_while_open():
    b, clock = make(threshold=1, cooldown=20)
    b.record_failure()
    clock.now += 5
    assert b.as_dict() == {"state": "open", "consecutiveFailures": 1, "opens": 1, "skippedPolls": 0,
                           "nextProbeInS": 15.0}
