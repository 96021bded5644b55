"""How far each meter's profiles and event logs have been delivered, kept across gateway restarts.

The cursor is the capture timestamp of the last row handed to the gateway, plus how many rows
carried exactly that timestamp (event logs can log several in one second): the next read starts
at that timestamp and skips what was already sent, so a row is never sent twice and never
skipped.

``send_to_storage`` only queues data in memory; the gateway moves it to its persistent storage a
moment later, and drops the queue when it stops. So a cursor is written to disk only once the
rows it covers have been queued for ``settle_s`` seconds while the gateway kept running: a crash
or stop in between re-sends those rows after the restart (same timestamps and values, so
ThingsBoard keeps one copy) instead of losing them. At a clean stop the gateway's queue is
checked: when it is empty, everything handed over is in storage and every cursor is written.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

#: Seconds the gateway gets to move queued rows into its storage before their cursor is saved.
SETTLE_S = 3.0
FORMAT_VERSION = 1
#: A cursor further ahead of the gateway's clock than this is not a meter clock error worth obeying:
#: it is ignored at load. Closer ones are checked against the meter's own clock (collector.py).
FAR_FUTURE_S = 31 * 86400


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    ts: int
    #: Rows with exactly ``ts`` that were delivered (the next read skips that many of them).
    at_ts: int = 1

    def to_json(self) -> dict:
        return {"ts": self.ts, "atTs": self.at_ts}

    @classmethod
    def check(cls, raw, latest_ms: int) -> "tuple[Cursor | None, str | None]":
        """The cursor a file entry stands for, and what was wrong with it (None: nothing).

        A cursor that cannot be trusted is dropped (the archive is backfilled from its horizon):
        one far in the future would otherwise hold a meter's profile back until that date.
        """
        if not isinstance(raw, dict):
            return None, f"cursor is a {type(raw).__name__}, not an object"
        ts = raw.get("ts")
        if not isinstance(ts, int) or isinstance(ts, bool):
            return None, f"ts {ts!r} is not a whole number of milliseconds"
        if ts < 0:
            return None, f"ts {ts} is negative"
        if ts > latest_ms:
            return None, (f"ts {ts} ({_iso(ts)}) is more than {FAR_FUTURE_S // 86400} days ahead of the "
                          "gateway's clock")
        at_ts = raw.get("atTs", 1)
        if not isinstance(at_ts, int) or isinstance(at_ts, bool) or at_ts < 0:
            return cls(ts, 0), f"atTs {at_ts!r} is not a count of rows"
        return cls(ts, at_ts), None



def _iso(ms: int) -> str:
    try:
        return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat()
    except (OverflowError, OSError, ValueError):
        return "beyond any date"


#: Sub-directory of the gateway's storage directory where cursors live by default.
DEFAULT_SUBDIR = "tb_dlms"


def store_file_name(connector_name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", connector_name).strip("_") or "dlms"
    return f"{slug}.cursors.json"


def gateway_storage_dir(gateway) -> Path | None:
    """The directory of the gateway's file or sqlite storage, if it has one (memory storage has none)."""
    storage = getattr(gateway, "_event_storage", None)
    if storage is None:
        return None
    for name in ("settings", "_SQLiteEventStorage__settings"):
        settings = getattr(storage, name, None)
        folder = getattr(settings, "data_folder_path", None) if settings is not None else None
        if isinstance(folder, str) and folder:
            return Path(folder)
        file_path = getattr(settings, "data_file_path", None) if settings is not None else None
        if isinstance(file_path, str) and file_path:
            path = Path(file_path)
            return path if file_path.endswith(("/", os.sep)) or path.is_dir() else path.parent
    return None


def cursor_file(gateway, data_dir: str | None, connector_name: str) -> Path:
    """``dataDir`` from the config, else next to the gateway's storage, else ./data (the working dir)."""
    if data_dir:
        folder = Path(data_dir)
    else:
        storage = gateway_storage_dir(gateway)
        folder = (storage if storage is not None else Path("data")) / DEFAULT_SUBDIR
    return folder.expanduser() / store_file_name(connector_name)


class CursorStore:
    """Delivered-up-to marks per (meter, OBIS), in memory at once and on disk once settled."""

    def __init__(self, path: str | os.PathLike, log: logging.Logger, settle_s: float = SETTLE_S,
                 clock: Callable[[], float] = time.monotonic,
                 storage_failed_at: Callable[[], float | None] = lambda: None) -> None:
        self.path = Path(path)
        #: When (same clock) the gateway's storage last refused data (storage_watch.py).
        self._storage_failed_at = storage_failed_at
        #: (meter, obis) whose cursor went back because the storage refused data after the hand-over.
        self._rolled_back: set[tuple[str, str]] = set()
        self._log = log
        self.settle_s = settle_s
        self._clock = clock
        self._durable: dict[str, dict[str, Cursor]] = self._load()
        self._current: dict[str, dict[str, Cursor]] = {m: dict(c) for m, c in self._durable.items()}
        #: Cursors delivered but not yet on disk: (meter, obis) -> [(handed over at, cursor)].
        self._pending: dict[tuple[str, str], list[tuple[float, Cursor]]] = {}

    def get(self, meter: str, obis: str) -> Cursor | None:
        return self._current.get(meter, {}).get(obis)

    def advance(self, meter: str, obis: str, cursor: Cursor) -> None:
        """Rows up to ``cursor`` were handed to the gateway just now."""
        self._current.setdefault(meter, {})[obis] = cursor
        self._pending.setdefault((meter, obis), []).append((self._clock(), cursor))

    def reset(self, meter: str, obis: str) -> None:
        """Forget a meter's progress (RPC): the next read backfills up to the horizon again."""
        self._current.get(meter, {}).pop(obis, None)
        self._durable.get(meter, {}).pop(obis, None)
        self._pending.pop((meter, obis), None)
        self._write()

    def flush(self, gateway_running: bool = True, queue_drained: bool = False) -> bool:
        """Write the cursors whose rows had time to reach the gateway's storage; True if written.

        ``queue_drained``: the gateway's queue is known to be empty (checked at stop), so every
        row handed over has been taken into its storage, however recently.
        """
        if not self._pending or not (gateway_running or queue_drained):
            return False
        settled_before = float("inf") if queue_drained else self._clock() - self.settle_s
        changed = False
        self._drop_refused()
        for (meter, obis), marks in list(self._pending.items()):
            settled = [c for t, c in marks if t <= settled_before]
            if not settled:
                continue
            self._durable.setdefault(meter, {})[obis] = settled[-1]
            rest = [(t, c) for t, c in marks if t > settled_before]
            if rest:
                self._pending[(meter, obis)] = rest
            else:
                del self._pending[(meter, obis)]
            changed = True
        if changed:
            self._write()
        return changed

    def _drop_refused(self) -> None:
        """Rows handed over before a storage refusal may be the refused ones: no cursor covering
        them is saved (a later one covers them too), and the cursor goes back to the last one
        saved, so the rows are read from the meter again (a duplicate at worst, never a gap)."""
        failed = self._storage_failed_at()
        if failed is None:
            return
        for key, marks in list(self._pending.items()):
            if marks[0][0] > failed:
                continue  # all handed over after the latest refusal
            meter, obis = key
            back = self._durable.get(meter, {}).get(obis)
            if back is None:
                self._current.get(meter, {}).pop(obis, None)
            else:
                self._current.setdefault(meter, {})[obis] = back
            del self._pending[key]
            self._rolled_back.add(key)
            self._log.warning("%s: %s: the gateway's storage refused data after rows up to %s were handed over; "
                              "the cursor goes back to %s and those rows are read from the meter again", meter, obis,
                              marks[-1][1].ts, back.ts if back is not None else "the configured horizon")

    def rolled_back(self, meter: str, obis: str) -> bool:
        """True once after the cursor of (meter, obis) went back for a storage refusal."""
        self._drop_refused()
        if (meter, obis) in self._rolled_back:
            self._rolled_back.discard((meter, obis))
            return True
        return False

    def settles_in(self, meter: str, obis: str) -> float | None:
        """Seconds until the oldest rows of (meter, obis) not yet on disk count as stored; None: all on disk."""
        marks = self._pending.get((meter, obis))
        return marks[0][0] + self.settle_s - self._clock() if marks else None

    @property
    def pending(self) -> int:
        return sum(len(v) for v in self._pending.values())

    def durable(self, meter: str, obis: str) -> Cursor | None:
        """The cursor on disk (what a restart resumes from), as opposed to the one in memory."""
        return self._durable.get(meter, {}).get(obis)

    # -- file ---------------------------------------------------------------------------------

    def _load(self) -> dict[str, dict[str, Cursor]]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            return self._set_aside(f"unreadable ({exc})")
        if not isinstance(raw, dict) or raw.get("version") != FORMAT_VERSION or not isinstance(raw.get("meters"), dict):
            if not isinstance(raw, dict):
                problem = f"holds a JSON {type(raw).__name__}, not an object"
            elif raw.get("version") != FORMAT_VERSION:
                problem = f"has version {raw.get('version')!r}; this connector reads version {FORMAT_VERSION}"
            else:
                problem = f'has "meters" of type {type(raw.get("meters")).__name__}, not an object'
            return self._set_aside(problem)
        out: dict[str, dict[str, Cursor]] = {}
        latest = int((time.time() + FAR_FUTURE_S) * 1000)
        for meter, cursors in raw["meters"].items():
            if not isinstance(cursors, dict):
                self._log.warning("Cursor file %s: meter %r has %s instead of an object of cursors; its profiles "
                                  "and event logs are backfilled from the configured horizon", self.path, meter,
                                  type(cursors).__name__)
                continue
            for obis, value in cursors.items():
                cursor, wrong = Cursor.check(value, latest)
                if wrong is not None:
                    self._log.warning("Cursor file %s: %s %s: %s; %s", self.path, meter, obis, wrong,
                                      "backfilled from the configured horizon" if cursor is None else
                                      f"resuming at {cursor.ts} and sending the rows of that instant again")
                if cursor is not None:
                    out.setdefault(meter, {})[obis] = cursor
        return out

    def _set_aside(self, problem: str) -> dict:
        """Starting over means a backfill up to the horizon (duplicates of equal rows at worst);
        keeping the file lets an operator (or a newer connector version) see what it held."""
        keep = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        self._log.error("Cursor file %s %s; kept as %s, every profile and event log is backfilled from the "
                        "configured horizon", self.path, problem, keep.name)
        try:
            self.path.replace(keep)
        except OSError:
            pass
        return {}

    def _write(self) -> None:
        """Atomic: a temp file in the same directory, fsync, rename; a crash leaves old or new, never half."""
        data = {"version": FORMAT_VERSION,
                "meters": {m: {o: c.to_json() for o, c in sorted(cs.items())}
                           for m, cs in sorted(self._durable.items())}}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(data, out, indent=1)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            _fsync_dir(self.path.parent)
        except OSError as exc:
            # Progress stays in memory; after a restart the rows since the last good write are sent again.
            self._log.error("Cursor file %s not written: %s", self.path, exc)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
