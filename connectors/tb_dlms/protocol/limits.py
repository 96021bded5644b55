"""Connection limits of a fleet: the most connections open at once and new connections a second.

A cellular head-end meets thousands of meters reconnecting together after a network outage (and
the operator's APN counts connections), so both the listeners and the links we dial are capped:
``max_connections`` open at once, ``max_new_per_s`` new ones a second (Alliander's defaults are
1000 and 30). Beyond that, connections wait in a queue that is fair because both gates are
first-in first-out: ``asyncio.Semaphore`` and ``asyncio.Lock`` wake their waiters in arrival order.
"""
from __future__ import annotations

import asyncio
import time


class RateGate:
    """At most ``rate`` passes a second, first come first served (None or 0: no limit)."""

    def __init__(self, rate: float | None) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def pass_(self) -> None:
        if not self._interval:
            return
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self._interval
            if wait > 0:
                await asyncio.sleep(wait)


class ConnectionLimits:
    """A slot per open connection and a rate for new ones; ``None`` leaves either unlimited.

    ``admit()`` waits for a slot, then for the rate; the caller gives the slot back with
    ``release()`` when its connection closes (or failed to open). Made on the loop that uses it.
    """

    def __init__(self, max_connections: int | None = None, max_new_per_s: float | None = None) -> None:
        self.max_connections = max_connections
        self.max_new_per_s = max_new_per_s
        self._slots = asyncio.Semaphore(max_connections) if max_connections else None
        self._gate = RateGate(max_new_per_s)
        self.open = 0
        self.queued = 0
        #: Connections that had to wait for a slot (the cap was reached): how often it bit.
        self.waited = 0

    @property
    def limited(self) -> bool:
        return self._slots is not None or bool(self.max_new_per_s)

    async def admit(self) -> None:
        if self._slots is not None:
            if self._slots.locked():
                self.waited += 1
            self.queued += 1
            try:
                await self._slots.acquire()
            finally:
                self.queued -= 1
        try:
            await self._gate.pass_()
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise
        self.open += 1

    def release(self) -> None:
        self.open -= 1
        if self._slots is not None:
            self._slots.release()

    def report(self) -> dict[str, int | float | None]:
        return {"maxConnections": self.max_connections, "maxNewConnectionsPerS": self.max_new_per_s,
                "open": self.open, "queued": self.queued, "waited": self.waited}
