"""Whether the gateway's storage is taking our data, since ``send_to_storage`` does not say so.

In thingsboard-gateway 3.8.5 ``send_to_storage`` only queues the data and answers SUCCESS; the
storage refuses it later, on the gateway's own thread, with nothing but a log line: the file
storage logs ``Failed to update data file! ... [Errno 28] No space left on device`` (its
``put()`` still returns True), the memory storage ``Memory storage is full!``, and the core
``Data from the device "..." cannot be saved``. Those records are the only signal, so this
handler listens to the gateway's ``storage`` logger (WARNING and above) and to that one message
of its ``service`` logger.

The storage counts as refusing from a refusal until data handed over after it has had
``settle_s`` to be stored without a new refusal (the rule of cursors.py).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .cursors import SETTLE_S

STORAGE_LOGGER = "storage"
SERVICE_LOGGER = "service"
#: The core's message when the storage's put() refused a record (3.8.5 tb_gateway_service.py).
CANNOT_BE_SAVED = "cannot be saved"


class StorageWatch(logging.Handler):
    def __init__(self, settle_s: float = SETTLE_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(logging.WARNING)
        self.settle_s = settle_s
        self._clock = clock
        self._guard = threading.Lock()
        self.refusals = 0
        self.failed_at: float | None = None
        self.message: str | None = None
        #: First hand-over after the latest refusal: it proves the storage works once settled.
        self._handed_after: float | None = None

    # -- the gateway's log records (any thread) -------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == SERVICE_LOGGER and CANNOT_BE_SAVED not in str(record.msg):
            return
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record still means a refusal
            text = str(record.msg)
        self.refused(" ".join(text.split())[:300])

    def refused(self, message: str) -> None:
        with self._guard:
            self.refusals += 1
            self.failed_at = self._clock()
            self.message = message
            self._handed_after = None

    def attach(self) -> None:
        """Idempotent: the gateway may reconfigure its loggers (remote logging settings)."""
        for name in (STORAGE_LOGGER, SERVICE_LOGGER):
            logger = logging.getLogger(name)
            if self not in logger.handlers:
                logger.addHandler(self)

    def detach(self) -> None:
        for name in (STORAGE_LOGGER, SERVICE_LOGGER):
            logging.getLogger(name).removeHandler(self)

    # -- our side ---------------------------------------------------------------------------

    def handed_over(self) -> None:
        with self._guard:
            if self.failed_at is not None and self._handed_after is None:
                self._handed_after = self._clock()

    def problem(self) -> str | None:
        """What the storage said, while it counts as refusing; None once it takes data again."""
        with self._guard:
            if self.failed_at is None:
                return None
            if self._handed_after is not None and self._clock() - self._handed_after >= self.settle_s:
                return None
            return self.message

    def failed_since(self) -> float | None:
        """When (monotonic) the storage last refused data; None: never."""
        return self.failed_at
