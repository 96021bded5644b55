"""Deadlines that hold even when the code they guard misbehaves.

Two levels. On the loop, ``guard_task`` bounds one poll from outside it: ``wait_for`` inside the
poll already cancels a slow read, but a cancellation that is swallowed or a teardown that waits
on a dead socket would still hold the meter's schedule forever. Off the loop, a ``Heartbeat``
that the loop bumps every second is checked by a ``LoopWatchdog`` thread: a loop blocked by a
synchronous call (a library bug, a DNS lookup, a CPU-bound parse) cannot notice that itself.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Callable

#: How long a cancelled poll gets to unwind before its meter's schedule moves on without it.
CANCEL_GRACE_S = 1.0


async def guard_task(task: asyncio.Task, deadline_s: float, grace_s: float = CANCEL_GRACE_S) -> bool:
    """Wait for ``task`` up to ``deadline_s``; cancel it if it is later. True if it finished in time.

    Never waits longer than ``deadline_s + grace_s``: a task that ignores its cancellation is left
    behind (it holds nothing the next poll needs once its session has been aborted).
    """
    done, _ = await asyncio.wait({task}, timeout=deadline_s)
    if done:
        return True
    task.cancel()
    await asyncio.wait({task}, timeout=grace_s)
    return False


class Heartbeat:
    """Monotonic time of the loop's last beat; read from any thread (a float store is atomic)."""

    def __init__(self, interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self.last = clock()
        self.beats = 0

    @classmethod
    def for_stall(cls, stall_after_s: float) -> "Heartbeat":
        """Beating four times per stall period: a healthy loop is never mistaken for a stuck one."""
        return cls(interval_s=min(1.0, stall_after_s / 4))

    def beat(self) -> None:
        self.last = self._clock()
        self.beats += 1

    def age(self) -> float:
        return self._clock() - self.last

    async def run(self) -> None:
        """Beat until cancelled; only a loop that gets round to this task counts as alive."""
        while True:
            self.beat()
            await asyncio.sleep(self.interval_s)


class LoopWatchdog:
    """A thread that calls ``on_stall`` when the heartbeat is older than ``stall_after_s``.

    ``heartbeat`` is a callable so that a restarted loop (with a new heartbeat) is watched too.
    After a stall it waits for a fresh beat before judging again, so one stall is one restart.
    """

    def __init__(self, name: str, heartbeat: Callable[[], Heartbeat | None], stall_after_s: float,
                 on_stall: Callable[[float], None], log: logging.Logger, check_every_s: float | None = None) -> None:
        self.name = name
        self._heartbeat = heartbeat
        self.stall_after_s = stall_after_s
        self._on_stall = on_stall
        self._log = log
        self._every = check_every_s or max(0.05, min(1.0, stall_after_s / 4))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stalls = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.name} watchdog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def check(self) -> bool:
        """One check (also called by tests): True when a stall was found and handled."""
        hb = self._heartbeat()
        if hb is None:
            return False
        age = hb.age()
        if age <= self.stall_after_s:
            return False
        self.stalls += 1
        try:
            self._on_stall(age)
        except Exception:  # noqa: BLE001 - the watchdog must outlive what it restarts
            self._log.exception("%s: restarting the polling loop failed", self.name)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.check()
