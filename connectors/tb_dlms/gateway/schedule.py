"""When each meter is polled: on a fixed grid, each meter shifted by its own offset.

A grid (not "sleep period after each poll") keeps the poll rate exact however long polls take; the
per-meter offset spreads thousands of meters so they do not all open connections in the same
instant. The offset comes from the meter's name, so a restart keeps the same spread.
"""
from __future__ import annotations

import math
import random

#: Offsets are drawn from [0, min(period, MAX_SPREAD_S)): a 15 s period spreads meters over all
#: 15 s (bench/scale.py: bursts of 2x the mean poll rate with a 10 s cap); a 15 min period still
#: starts every meter within its first minute.
MAX_SPREAD_S = 60.0


def start_offset(name: str, period: float, max_spread: float = MAX_SPREAD_S) -> float:
    return random.Random(name).uniform(0, min(period, max_spread))


def next_slot(now: float, period: float, offset: float) -> float:
    """The first grid time strictly after ``now``: slots a slow poll overran are skipped, not queued."""
    return offset + (math.floor((now - offset) / period) + 1) * period


def slots_between(earlier: float, later: float, period: float) -> int:
    """How many grid slots lie strictly between two slots (the ones skipped)."""
    return max(0, round((later - earlier) / period) - 1)
