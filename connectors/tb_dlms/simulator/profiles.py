"""Profile Generic buffers (load profile, event log) with selective access.

The load profile is virtual: row k is (first + k*900 s, energies at that time), computed from the
meter's load model, so "filled back N days on start" and "a new row every 15 minutes" cost no
memory and stay consistent with the energy registers. The event log is a short per-meter list.
Selectors: 1 = range by the clock column (from/to COSEM date-times), 2 = by entry (1-based, to
0 = last); both may restrict columns. Parameters arrive already decoded by gurux.
"""
from __future__ import annotations

import bisect
import math

from ..protocol import axdr
from ..protocol.axdr import DataType
from .objects import CAPTURE_PERIOD


class SelectorError(Exception):
    """Selective access the meter refuses (unknown selector, malformed or rejected range)."""


def _column_indexes(selected, capture_lns: tuple[bytes, ...]) -> list[int]:
    if not selected:
        return list(range(len(capture_lns)))
    out = []
    for item in selected:
        try:
            ln = bytes(item[1])
        except (TypeError, IndexError) as exc:
            raise SelectorError("bad column descriptor") from exc
        if ln not in capture_lns:
            raise SelectorError(f"column {ln.hex()} is not captured")
        out.append(capture_lns.index(ln))
    return out


def _entry_window(params, count: int, ncols: int) -> tuple[int, int, list[int]]:
    """Selector 2: returns the 0-based [start, stop) row window and columns."""
    try:
        first, last = int(params[0]), int(params[1])
        col_first = int(params[2]) if len(params) > 2 else 1
        col_last = int(params[3]) if len(params) > 3 else 0
    except (TypeError, ValueError, IndexError) as exc:
        raise SelectorError("bad entry descriptor") from exc
    first = max(first, 1)
    last = count if last == 0 else min(last, count)
    col_first = max(col_first, 1)
    col_last = ncols if col_last == 0 else min(col_last, ncols)
    return first - 1, max(first - 1, last), list(range(col_first - 1, col_last))


def _range_bounds(params, spec) -> tuple[float, float, object]:
    try:
        start = spec.decode_time(bytes(params[1]))
        end = spec.decode_time(bytes(params[2]))
        columns = params[3] if len(params) > 3 else None
    except (TypeError, IndexError) as exc:
        raise SelectorError("bad range descriptor") from exc
    return (-math.inf if start is None else start), (math.inf if end is None else end), columns


class LoadProfile:
    """Rows at every capture period from ``first`` to the meter's current time."""

    def __init__(self, capture_lns: tuple[bytes, ...], capacity: int, registers: tuple = ()) -> None:
        self.capture_lns = capture_lns
        self.capacity = capacity
        #: RegisterDefs of the columns after the clock; () keeps the classic energy import/export pair.
        self.registers = registers

    def window(self, first: float, now: float) -> tuple[float, int]:
        """(time of the oldest kept row, number of rows)."""
        last = math.floor(now / CAPTURE_PERIOD) * CAPTURE_PERIOD
        if last < first:
            return first, 0
        count = int((last - first) // CAPTURE_PERIOD) + 1
        if count > self.capacity:
            first += (count - self.capacity) * CAPTURE_PERIOD
            count = self.capacity
        return first, count

    def row_times(self, meter, now: float) -> list[float]:
        """Capture times of the rows held now, oldest first, without those a clock jump skipped."""
        first, count = self.window(meter.profile_first, now)
        times = [first + k * CAPTURE_PERIOD for k in range(count)]
        if meter.skipped:
            times = [t for t in times if not any(lo < t < hi for lo, hi in meter.skipped)]
        return times

    def encode(self, meter, selector: int, params, now: float, reject_range: bool) -> bytes:
        times = self.row_times(meter, now)
        count = len(times)
        ncols = len(self.capture_lns)
        if selector == 0 or params is None:
            start, stop, cols = 0, count, list(range(ncols))
        elif selector == 1:
            if reject_range:
                raise SelectorError("range selector rejected by configuration")
            t0, t1, selected = _range_bounds(params, meter.spec)
            cols = _column_indexes(selected, self.capture_lns)
            start, stop = bisect.bisect_left(times, t0), bisect.bisect_right(times, t1)
            stop = max(start, stop)
        elif selector == 2:
            start, stop, cols = _entry_window(params, count, ncols)
        else:
            raise SelectorError(f"selector {selector} not supported")
        stamp = meter.spec.encode_time
        load = meter.load
        rows = []
        compact = meter.spec.profile_null_clock
        for k, t in enumerate(times[start:stop]):
            clock = axdr.NULL_DATA if compact and k else axdr.octets(stamp(t))
            values = (
                clock,
                axdr.integer(DataType.UINT32, load.energy_import(t)),
                axdr.integer(DataType.UINT32, load.energy_export(t)),
            ) if not self.registers else (clock, *(r.encode(load, t) for r in self.registers))
            rows.append(axdr.structure(*(values[c] for c in cols)))
        return axdr.array(rows)


class EventLog:
    """(meter time, event code) rows kept per meter, oldest first, bounded."""

    def __init__(self, capture_lns: tuple[bytes, ...], capacity: int = 100) -> None:
        self.capture_lns = capture_lns
        self.capacity = capacity

    def encode(self, meter, selector: int, params) -> bytes:
        events = meter.events
        ncols = len(self.capture_lns)
        if selector == 0 or params is None:
            chosen, cols = events, list(range(ncols))
        elif selector == 1:
            t0, t1, selected = _range_bounds(params, meter.spec)
            cols = _column_indexes(selected, self.capture_lns)
            chosen = [e for e in events if t0 <= e[0] <= t1]
        elif selector == 2:
            start, stop, cols = _entry_window(params, len(events), ncols)
            chosen = events[start:stop]
        else:
            raise SelectorError(f"selector {selector} not supported")
        stamp = meter.spec.encode_time
        rows = []
        for t, code in chosen:
            values = (axdr.octets(stamp(t)), axdr.integer(DataType.UINT8, code))
            rows.append(axdr.structure(*(values[c] for c in cols)))
        return axdr.array(rows)
