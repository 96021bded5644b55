"""One daemon thread running one asyncio loop: all meters of a connector share it.

The gateway calls the connector from its own threads (open, close, RPC, attribute updates); they
hand work to the loop with ``submit``/``call`` and never touch sessions directly.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

T = TypeVar("T")
Main = Callable[[asyncio.Event], Awaitable[None]]


class LoopNotRunning(RuntimeError):
    pass


class LoopThread:
    def __init__(self, name: str, main: Main, log: logging.Logger) -> None:
        self.name = name
        self._main = main
        self._log = log
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        loop = self._loop
        return loop is not None and loop.is_running() and not self._stop_requested()

    def _stop_requested(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    def start(self, ready_timeout: float = 5.0) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        self._ready.wait(ready_timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except Exception:  # noqa: BLE001 - logged; the thread ends and the connector reports stopped
            self._log.exception("%s: polling loop failed", self.name)
        finally:
            try:
                _cancel_leftovers(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        await self._main(self._stopping)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the loop from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed() or self._stop_requested():
            coro.close()
            raise LoopNotRunning(f"{self.name} is not running")
        try:
            return asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError as exc:  # the loop closed between the check and the call
            coro.close()
            raise LoopNotRunning(f"{self.name} is not running") from exc

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run a coroutine on the loop and wait for its result; ``TimeoutError`` after ``timeout``."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise TimeoutError(f"no result within {timeout:g} s") from exc

    def stop(self, timeout: float) -> bool:
        """Ask ``main`` to finish and wait up to ``timeout``; True once the thread has ended."""
        thread = self._thread
        if thread is None:
            return True
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # closed meanwhile
                pass
        if thread is not threading.current_thread():
            thread.join(timeout)
        return not thread.is_alive()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what ``main`` left running (RPCs in flight) so their callers get an answer."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
