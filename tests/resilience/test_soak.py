"""A CI-sized fault soak: 30 meters, a quarter misbehaving for most of two minutes.

The long version (hundreds of meters, tens of minutes, memory figures) is ``bench/soak.py``;
this runs the same harness small. Assertions are on counters collected during the run.
"""
from __future__ import annotations

import os

import pytest
import support  # noqa: F401 - puts bench/ on the path

from soak import run_soak

pytestmark = pytest.mark.soak


def test_fault_soak_keeps_healthy_meters_on_time_and_breakers_recover():
    duration = float(os.environ.get("TB_DLMS_SOAK_S", "110"))
    result = run_soak(meters=30, duration=duration, period=2.0, faulty=0.25, slack=1.0, cooldown=3.0)
    summary = {k: v for k, v in result.as_dict().items() if k != "top_growth"}
    assert result.loop_alive and result.loop_restarts == 0, summary
    assert result.stuck_polls == 0, summary
    assert result.on_time >= 0.99, summary
    assert result.polls_failed > 0 and result.skipped_by_breaker > 0, summary  # the faults did bite
    assert result.dark_meters and set(result.dark_meters) <= set(result.breakers_opened), summary
    assert result.breakers_open_at_end == [], summary
