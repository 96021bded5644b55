"""The demo's live table: per meter one row that fits an 80-column terminal.

What a demo user looks for is each meter's voltages, currents, frequency, power and energy, with
units, and whether the meter is healthy. So the columns are those quantities, not the telemetry
keys in alphabetical order (sorted, ``voltageL1`` started at column 175 and was cut off on any
usual terminal). The keys are the shipped example's (``config/dlms_connector.json``, the names the
docs and dashboards use); the units come from the ``units`` attribute the connector publishes once
per association, health from ``dlmsConnected`` / ``breakerState`` / ``lastError``.

Layout, widths, truncation with an ellipsis and refreshing in place are rich's job (``Table`` and
``Live``), not hand-made column arithmetic. Off a terminal (CI, logs) the same table is printed as a
plain snapshot each time something arrived, preceded by ``--- HH:MM:SS``.
"""
from __future__ import annotations

import collections
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from .fake_thingsboard import FakeThingsBoard

#: (header, telemetry keys, decimals, scale with k/M/G): one column per quantity.
COLUMNS = (
    ("Voltage L1-L3", ("voltageL1", "voltageL2", "voltageL3"), 1, False),
    ("Current L1-L3", ("currentL1", "currentL2", "currentL3"), 2, False),
    ("Freq", ("frequency",), 2, False),
    ("Power", ("activePowerImport",), None, True),
    ("Energy", ("energyImport",), None, True),
)
_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"))
#: Units a k/M/G prefix applies to (energy registers count Wh: 47098896 Wh reads as 47.10 MWh).
_SCALABLE = {"W", "Wh", "var", "varh", "VA", "VAh", "V", "A"}


@dataclass
class MeterRow:
    name: str
    telemetry: dict
    units: dict
    connected: bool | None  # None: no health attribute yet
    breaker: str | None
    last_error: str | None
    polls: int  # telemetry entries received: one per good poll


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def format_quantity(values: list[Any], unit: str | None, decimals: int | None, scale: bool) -> str:
    """``226.6 235.4 227.0 V``; ``47.10 MWh``; ``-`` for a value not (yet) received."""
    numbers = [_number(v) for v in values]
    present = [abs(n) for n in numbers if n is not None]
    if not present and all(v is None for v in values):
        return "-"
    factor, prefix = 1.0, ""
    if scale and unit in _SCALABLE and present:
        factor, prefix = next(((f, p) for f, p in _PREFIXES if max(present) >= f), (1.0, ""))
    if decimals is None:  # four significant digits of the largest: 3.714 kW, 718 W, 983.6 kWh
        largest = max(present, default=0.0) / factor
        decimals = max(0, 4 - len(str(int(largest))))
    parts = [("-" if v is None else str(v)) if n is None else f"{n / factor:.{decimals}f}"
             for v, n in zip(values, numbers, strict=True)]
    return " ".join(parts) + (f" {prefix}{unit}" if unit else "")


def health(row: MeterRow) -> str:
    """``15 ok`` (good polls so far), ``down``, ``open`` (circuit breaker) or ``wait``."""
    if row.connected is False:
        return "open" if row.breaker == "open" else "down"
    if row.connected is None and not row.polls:
        return "wait"
    return f"{row.polls} ok"


def snapshot(tb: FakeThingsBoard) -> tuple[str, list[MeterRow]]:
    """Header line and rows, copied under the fake ThingsBoard's lock."""
    with tb._cond:
        polls = collections.Counter(t.device for t in tb.telemetry)
        rows = []
        for d in sorted(tb.devices.values(), key=lambda d: d.name):
            attrs = d.attributes
            raw_units = attrs.get("units")
            units: dict = raw_units if isinstance(raw_units, dict) else {}
            connected = attrs.get("dlmsConnected")
            rows.append(MeterRow(d.name, dict(d.telemetry), dict(units),
                                 connected if isinstance(connected, bool) else None,
                                 attrs.get("breakerState"), attrs.get("lastError"), polls[d.name]))
        gateway = "gateway connected" if tb.session_limit_requests else "gateway not seen yet"
        header = (f"fake ThingsBoard {tb.host}:{tb.port}: {gateway}, {len(rows)} meter(s), "
                  f"{len(tb.telemetry)} entries")
    return header, rows


def render(tb: FakeThingsBoard, *, live: bool = True) -> Group:
    """The table as a rich renderable; ``live``: error notes cut to one line (a screen, not a log)."""
    header, rows = snapshot(tb)
    # One space between columns (the box's divider). The readings' columns do not wrap, so on a narrow
    # screen rich narrows the (wrappable) name and health columns first; their cells end in an ellipsis.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=0,
                  header_style="bold")
    table.add_column("Meter", max_width=20)
    for title, _, _, _ in COLUMNS:
        table.add_column(title, no_wrap=True, overflow="ellipsis", justify="right")
    table.add_column("Health")
    notes = []
    for row in rows:
        cells = [format_quantity([row.telemetry.get(k) for k in keys], row.units.get(keys[0]), decimals, scale)
                 for _, keys, decimals, scale in COLUMNS]
        table.add_row(Text(row.name, no_wrap=True, overflow="ellipsis"), *cells,
                      Text(health(row), no_wrap=True, overflow="ellipsis"))
        if row.connected is False and row.last_error:
            notes.append(Text(f"{row.name}: {row.last_error}", style="red",
                              no_wrap=live, overflow="ellipsis" if live else "fold"))
    parts: list[Any] = [Text(header, no_wrap=True, overflow="ellipsis")]
    if rows:
        parts.append(table)
        parts.append(Text("Health: N ok = good polls so far; down, open (breaker): last error below",
                          style="dim", no_wrap=True, overflow="ellipsis"))
    else:
        parts.append(Text("  (waiting for the gateway to report meters...)"))
    return Group(*parts, *notes)


def _summary(tb: FakeThingsBoard) -> str:
    with tb._cond:
        with_data = sum(1 for d in tb.devices.values() if d.telemetry)
        return (f"SUMMARY meters={len(tb.devices)} meters_with_telemetry={with_data} "
                f"telemetry_entries={len(tb.telemetry)} messages={len(tb.messages)}")


def run_live_table(tb: FakeThingsBoard, duration: float | None, interval: float, out=sys.stdout,
                   console: Console | None = None) -> None:
    """Refresh the table every ``interval`` s until ``duration`` s passed or Ctrl-C; then a final one."""
    console = console or Console(file=out, highlight=False)
    deadline = None if duration is None else time.monotonic() + duration
    stop = threading.Event()

    def wait() -> bool:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        stop.wait(interval if remaining is None else min(interval, remaining))
        return True

    try:
        if console.is_terminal:
            # transient: the final snapshot below replaces the live one instead of repeating it.
            with Live(render(tb), console=console, auto_refresh=False, transient=True,
                      vertical_overflow="ellipsis") as screen:
                while wait():
                    screen.update(render(tb), refresh=True)
        else:
            last_count = -1
            while True:
                with tb._cond:
                    count = len(tb.messages)
                if count != last_count:  # plain snapshots when piped, only when something changed
                    last_count = count
                    console.print(f"--- {time.strftime('%H:%M:%S')}", soft_wrap=True)
                    console.print(render(tb, live=False))
                if not wait():
                    break
    except KeyboardInterrupt:
        pass
    console.print("--- final", soft_wrap=True)
    console.print(render(tb, live=False))
    console.print(_summary(tb), soft_wrap=True)
