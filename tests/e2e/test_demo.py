"""``start_gateway.sh --demo`` runs everything locally and shows live telemetry.

Runs the real script (in this test environment's virtualenv: TB_DLMS_SKIP_SETUP=1), which starts
Mosquitto, the simulator (matching config/dlms_connector.json), the gateway and the fake
ThingsBoard live table, then cleans up: once piped (the plain snapshots a log or CI sees) and once
in a real 80x24 terminal (tmux), reading the screen as a user would see it.
"""
from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2e_support import REPO

# The gateway loads this class by name: a missing module or a rename fails here, not as a skip.
from tb_dlms.gateway.connector import DLMSConnector  # noqa: F401

DURATION_S = 20
#: One meter's row: its readings with their units (the demo config's values: 230 V, a few A, 50 Hz).
ROW_UNITS = re.compile(r"\d+\.\d V .*\d+\.\d\d A .*\d+\.\d\d Hz .*\d k?W .*\d [kMG]?Wh \d+ ok\b")


def _env(mosquitto_path: str) -> dict:
    env = {**os.environ, "TB_DLMS_VENV": str(Path(sys.executable).parent.parent), "TB_DLMS_SKIP_SETUP": "1",
           "MOSQUITTO": mosquitto_path}
    for name in ("COLUMNS", "LINES"):  # the terminal's size must decide, as for a user
        env.pop(name, None)
    return env


def test_demo_shows_live_telemetry(mosquitto_path):
    devices = json.loads((REPO / "config" / "dlms_connector.json").read_text())["devices"]
    env = _env(mosquitto_path)
    proc = subprocess.run(["bash", str(REPO / "start_gateway.sh"), "--demo", "--duration", str(DURATION_S)],
                          cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=DURATION_S + 90)
    out = proc.stdout
    assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:\n{out[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    summary = re.search(r"SUMMARY meters=(\d+) meters_with_telemetry=(\d+) telemetry_entries=(\d+)", out)
    assert summary, out[-4000:]
    assert int(summary.group(2)) == len(devices), out[-4000:]
    final = out.split("--- final", 1)[1]
    for dev in devices:
        row = next((line for line in final.splitlines() if line.strip().startswith(dev["deviceName"])), None)
        assert row is not None, final
        assert ROW_UNITS.search(row), row
    assert "demo: stopped" in out


@pytest.fixture(scope="module")
def tmux_path() -> str:
    path = shutil.which("tmux")
    if path:
        return path
    reason = "tmux not found (apt-get install tmux): the demo's terminal test needs it"
    if os.environ.get("TB_DLMS_REQUIRE_MOSQUITTO") == "1" or os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


class Terminal:
    """One tmux session of its own server (private socket): an 80x24 terminal running one command."""

    def __init__(self, tmux: str, socket: Path, width: int = 80, height: int = 24) -> None:
        self.base = [tmux, "-S", str(socket), "-f", "/dev/null"]
        self.width, self.height = width, height

    def tmux(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, check=True, timeout=30).stdout

    def start(self, argv: list[str], cwd: Path, env: dict) -> None:
        # exec: the command itself is the pane's process, as when typed at a shell (else tmux's
        # ``sh -c`` dies of the Ctrl-C first). remain-on-exit: its last screen stays readable.
        subprocess.run([*self.base, "new-session", "-d", "-s", "demo", "-x", str(self.width), "-y",
                        str(self.height), "-c", str(cwd), "exec " + shlex.join(argv),
                        ";", "set-option", "-t", "demo", "remain-on-exit", "on"],
                       env=env, check=True, timeout=30)

    def screen(self, history: bool = False) -> list[str]:
        """The lines as shown; -J joins lines the terminal wrapped, so a too-long line shows as one."""
        text = self.tmux("capture-pane", "-p", "-J", "-t", "demo", *(["-S", "-"] if history else []))
        return [line.rstrip() for line in text.splitlines()]

    def ended(self) -> bool:
        """The command has exited. Not from tmux's pane_dead_status alone: tmux 3.3a now and then
        leaves the exited command a zombie it never reaps (seen 1 in 8 runs), so ask /proc too."""
        dead, _, pid = self.tmux("display-message", "-p", "-t", "demo",
                                 "#{pane_dead} #{pane_pid}").strip().partition(" ")
        if dead == "1":
            return True
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        return state in ("Z", "X")

    def wait(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.5)  # polling the screen: there is no event to wait on
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; screen:\n"
                             + "\n".join(self.screen(history=True)))

    def close(self) -> None:
        """Stop the demo as a user would (Ctrl-C: it cleans up its broker, gateway, simulator), then tmux."""
        try:
            if not self.ended():
                self.tmux("send-keys", "-t", "demo", "C-c")
                self.wait(self.ended, 60, "the demo to exit")
        except (AssertionError, subprocess.SubprocessError, ValueError):
            pass  # the session is gone already, or will be killed below
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=30)


def _meter_rows(lines: list[str], devices: list[dict]) -> dict[str, str] | None:
    rows = {d["deviceName"]: next((ln for ln in lines if ln.startswith(d["deviceName"] + " ")), None)
            for d in devices}
    return rows if all(row and ROW_UNITS.search(row) for row in rows.values()) else None


def test_demo_in_an_80x24_terminal(mosquitto_path, tmux_path, tmp_path):
    """The live table on an 80x24 screen: per meter one row with units and health; no line over 80."""
    devices = json.loads((REPO / "config" / "dlms_connector.json").read_text())["devices"]
    term = Terminal(tmux_path, tmp_path / "tmux.sock")
    term.start(["bash", str(REPO / "start_gateway.sh"), "--demo", "--duration", "300"], REPO, _env(mosquitto_path))
    try:
        rows = term.wait(lambda: _meter_rows(term.screen(), devices), 120, "each meter's row with units")
        live = term.screen()
        assert all(len(line) <= 80 for line in live), "lines over 80 columns:\n" + "\n".join(live)
        assert any(line.startswith("Meter") and "Voltage" in line and "Health" in line for line in live), live
        assert len(rows) == len(devices), rows

        term.tmux("send-keys", "-t", "demo", "C-c")  # the way a user ends it
        term.wait(term.ended, 60, "the demo to exit after Ctrl-C")
        everything = term.screen(history=True)
        text = "\n".join(everything)
        assert "demo: stopped" in text and "Traceback" not in text, text
        final = everything[max(i for i, line in enumerate(everything) if line == "--- final"):]
        assert _meter_rows(final, devices), text
        too_long = [line for line in everything if len(line) > 80]
        assert not too_long, "lines over 80 columns:\n" + "\n".join(too_long)
    finally:
        term.close()


def test_live_table_fits_80_columns_with_long_names_and_a_down_meter():
    """What the gateway sends, as the table shows it: units from the ``units`` attribute, values scaled
    (Wh to MWh), a long name cut, a down meter's health and its last error under the table."""
    from rich.console import Console

    from tb_dlms.devtools.fake_thingsboard import FakeThingsBoard, Message
    from tb_dlms.devtools.live_table import render

    tb = FakeThingsBoard(port=1)  # not connected: fed below with the gateway's messages
    values = {"voltageL1": 228.2, "voltageL2": 232.54, "voltageL3": 227.1, "currentL1": 6.81, "currentL2": 5.86,
              "currentL3": 7.03, "frequency": 50.02, "activePowerImport": 3744, "energyImport": 47098896}
    units = {k: u for k, u in zip(values, ["V"] * 3 + ["A"] * 3 + ["Hz", "W", "Wh"], strict=True)}
    long_name = "Substation 7 feeder B main incomer"
    messages = [
        ("v1/gateway/telemetry", {"Meter 1": [{"ts": 1, "values": values}], long_name: [{"ts": 1, "values": values}]}),
        ("v1/gateway/attributes", {"Meter 1": {"units": units, "dlmsConnected": True}}),
        ("v1/gateway/attributes", {long_name: {"units": units, "dlmsConnected": False,
                                               "lastError": "timed out after 10 s waiting for the reply " * 3}}),
        ("v1/gateway/connect", {"device": "Meter 9", "type": "dlms-meter"}),
    ]
    with tb._cond:
        for topic, payload in messages:
            tb._record(Message(topic, payload, time.time()))
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None, record=True)
    console.print(render(tb))
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    row = next(line for line in lines if line.startswith("Meter 1 "))
    assert "228.2 232.5 227.1 V" in row and "6.81 5.86 7.03 A" in row and "50.02 Hz" in row, row
    assert "3.744 kW" in row and "47.10 MWh" in row and row.endswith("1 ok"), row
    down = next(line for line in lines if line.startswith("Subst") and " V " in line)
    assert "…" in down and down.endswith("down"), down
    assert any(line.startswith(long_name + ": timed out") for line in lines), lines
    waiting = next(line for line in lines if line.startswith("Meter 9"))
    assert waiting.endswith("wait") and " - " in waiting, waiting
