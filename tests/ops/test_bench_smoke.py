"""The benchmarks still run: each is started with the smallest inputs and must finish cleanly.

Figures are not checked here (speed belongs to the benchmarks themselves, run side by side);
what is checked is that a benchmark a reader is told to run does not rot.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float = 180) -> str:
    res = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_session_benchmark_compares_both_clients():
    out = json.loads(run("bench/bench_session.py", "--polls", "3", "--delays", "0", "--json"))
    text = json.dumps(out)
    assert "plain" in text and "round_trips_per_poll" in text, text[:500]


def test_gcm_benchmark_runs():
    assert run("bench/bench_gcm.py", "--budget", "0.05").strip()


@pytest.mark.parametrize("meters", [5])
def test_connector_memory_benchmark_reports_every_meter(meters):
    out = run("bench/connector_memory.py", "--meters", str(meters), "--period", "1")
    assert f"{meters} meters ({meters} reported)" in out, out


BENCHES = sorted(p.name for p in (REPO / "bench").glob("*.py") if "__main__" in p.read_text())


@pytest.mark.parametrize("script", BENCHES)
def test_bench_docstring_flags_exist(script):
    """Every ``--flag`` a benchmark's docstring tells a reader to use is one its ``--help`` lists."""
    import ast
    import re

    doc = ast.get_docstring(ast.parse((REPO / "bench" / script).read_text())) or ""
    documented = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", doc))
    help_text = run(f"bench/{script}", "--help", timeout=60)
    offered = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", help_text))
    assert documented <= offered, f"{script}: docstring documents {sorted(documented - offered)}, not in --help"
