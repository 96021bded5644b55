import pytest


@pytest.fixture(autouse=True)
def _logs_in_tmp(tmp_path, monkeypatch):
    """The gateway's init_logger writes '<name>_connector.log' into the working directory."""
    monkeypatch.chdir(tmp_path)
