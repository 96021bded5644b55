"""Simulated meters for the operator tools' tests (helpers in tools_support.py)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from tb_dlms.simulator import MeterSpec, Simulator  # noqa: E402


@pytest.fixture(scope="package")
def sim():
    s = Simulator([
        MeterSpec("open"),
        MeterSpec("locked", auth="low"),
        MeterSpec("bus-a", interface="hdlc", hdlc_group="bus", physical_address=17, address_size=4, auth="low"),
        MeterSpec("old-sn", interface="hdlc", auth="low", referencing="sn"),
    ]).start()
    yield s
    s.stop()


@pytest.fixture()
def token(monkeypatch):
    monkeypatch.setenv("TB_GATEWAY_TOKEN", "test-token")
    # No broker behind the shipped localhost:1883; the ThingsBoard side has its own tests.
    monkeypatch.setenv("TB_DLMS_NO_PLATFORM_CHECK", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
