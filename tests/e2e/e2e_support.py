"""Helpers shared by the e2e test modules (imported as a plain module: tests/ has no packages)."""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
HARNESS_EXTENSIONS = HERE / "harness_ext"


def stop_gateway(gw) -> None:
    """Stop with SIGINT and check it went down cleanly (exit code 0)."""
    code = gw.stop()
    assert code == 0, f"gateway exit code {code}; output tail:\n{gw.output_tail()}"


def device_stats(fake_tb, device: str) -> dict:
    """A meter's getStats reply through the real gateway (an error reply fails the test)."""
    reply = fake_tb.device_rpc(device, "getStats", {}, timeout=20)
    assert isinstance(reply, dict) and "error" not in reply, reply
    return reply
