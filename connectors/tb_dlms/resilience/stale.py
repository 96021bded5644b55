"""Reconnect a meter that has given no good reading for too long, whatever its polls say.

A session can look healthy and still be useless: every attribute refused after a firmware update
changed access rights, a serial server answering for a meter that is gone, an association the
meter half-forgot. Starting over (new TCP link, new association) is cheap next to silence.
"""
from __future__ import annotations

import time
from typing import Callable


class StaleTimer:
    def __init__(self, stale_after_s: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after_s = stale_after_s
        self._clock = clock
        self.last_good = clock()
        self.reconnects = 0

    def good(self) -> None:
        self.last_good = self._clock()

    def due(self) -> bool:
        """True (once per ``stale_after_s`` of silence) when the session should be rebuilt."""
        if not self.stale_after_s or self._clock() - self.last_good < self.stale_after_s:
            return False
        self.reconnects += 1
        self.last_good = self._clock()  # next attempt after another full period of silence
        return True
