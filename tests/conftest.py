"""Shared by every test directory (tests/ has no packages: helpers are plain modules on the path)."""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
#: Directories whose tests run the connector, and so the gateway's logger, in-process.
IN_PROCESS_CONNECTOR_DIRS = (HERE / "gateway", HERE / "resilience")


@pytest.fixture(autouse=True)
def _logs_in_tmp(request: pytest.FixtureRequest) -> None:
    """The gateway's init_logger writes '<name>_connector.log' into the working directory."""
    if Path(str(request.path)).resolve().parent in IN_PROCESS_CONNECTOR_DIRS:
        request.getfixturevalue("monkeypatch").chdir(request.getfixturevalue("tmp_path"))
