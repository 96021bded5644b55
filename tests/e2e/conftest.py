"""Fixtures for end-to-end tests: real Mosquitto, fake ThingsBoard, the real gateway as a subprocess.

Every test in tests/e2e is marked ``e2e`` (``pytest -m "not e2e"`` skips them). Without a
``mosquitto`` binary they are skipped, unless ``TB_DLMS_REQUIRE_MOSQUITTO=1`` (CI), where that fails.
Heavy fixtures are module-scoped: one broker + fake ThingsBoard + gateway (+ simulator) per module.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tb_dlms.devtools.fake_thingsboard import FakeThingsBoard
from tb_dlms.devtools.mosquitto import MosquittoBroker, MosquittoNotFound, find_mosquitto

from e2e_support import HERE


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def mosquitto_path() -> str:
    try:
        return find_mosquitto()
    except MosquittoNotFound as exc:
        if os.environ.get("TB_DLMS_REQUIRE_MOSQUITTO") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def broker(mosquitto_path, tmp_path_factory):
    b = MosquittoBroker(workdir=tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.close()


@pytest.fixture(scope="module")
def fake_tb(broker):
    tb = FakeThingsBoard(port=broker.port).start()
    yield tb
    tb.stop()
