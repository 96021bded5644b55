"""A meter's health as ThingsBoard sees it: health attributes, and its presence among connected devices.

Health attributes (``dlmsConnected``, ``lastError``, ``breakerState``, ``modeEIdentification``) are sent
only when they change. Every message is device activity to ThingsBoard, so while the breaker holds a
silent meter disconnected there, its health is held back and sent when it answers again; the gateway's
own problems that the meter pays for (a storage refusing data, a value too large) are said here too,
once per episode, because ``lastError`` is where a user looks first.
"""
from __future__ import annotations

import datetime as _dt
import logging
import time
from typing import Any, Callable

from thingsboard_gateway.gateway.entities.converted_data import ConvertedData
from thingsboard_gateway.gateway.entities.datapoint_key import DatapointKey

from ..resilience.breaker import BreakerState, Transition
from .coordinator import MeterCoordinator, PollDone, PollListener

HEALTH_CONNECTED = "dlmsConnected"
HEALTH_LAST_ERROR = "lastError"
HEALTH_BREAKER = "breakerState"
MODE_E_IDENTIFICATION = "modeEIdentification"

Publish = Callable[[ConvertedData], None]


def _dt_iso(ts: float | None) -> str:
    return _dt.datetime.fromtimestamp(ts or 0, _dt.timezone.utc).isoformat(timespec="seconds")


class MeterHealth(PollListener):
    def __init__(self, coordinator: MeterCoordinator, device_type: str, publish: Publish, log: logging.Logger,
                 presence: Callable[[bool], None] | None = None) -> None:
        self.name = coordinator.name
        self._coordinator = coordinator
        self._type = device_type
        self._publish = publish
        self._log = log
        #: Told False when the meter should leave ThingsBoard's connected devices, True when it is back.
        self._presence = presence
        self.last_error: str | None = None
        #: Connected at ThingsBoard (the gateway connects a device with its first data). False once the
        #: breaker opened: the device is then disconnected, and nothing is published for it (every
        #: message is device activity to ThingsBoard) until it answers again; health held meanwhile.
        self.on_platform = True
        self.platform_disconnects = 0
        self._sent: dict[str, Any] = {}
        self._held: dict[str, Any] = {}
        #: Hand-overs made while the gateway's storage refused data, and what it said (None: it takes data).
        self.storage_refusals = 0
        self.storage_error: str | None = None
        self._storage_refusing_since: float | None = None
        #: Values dropped because ThingsBoard would refuse them as too large, and the size seen per key.
        self.oversized_values = 0
        self._oversized_keys: dict[str, int] = {}

    # -- what the coordinator tells ------------------------------------------------------------

    async def poll_done(self, poll: PollDone) -> None:
        self.set_health(poll.error)
        if poll.identification:  # an optical probe's mode E sign-on: which meter it is on
            self._send_changed({MODE_E_IDENTIFICATION: poll.identification})
        self.breaker_changed(poll.breaker)

    def breaker_changed(self, change: Transition | None) -> None:
        """Log and publish a breaker transition once, whatever the number of failed polls behind it."""
        if change is None:
            self._send_changed({HEALTH_BREAKER: self._coordinator.breaker.state.value})  # first poll: initial state
            return
        if change.new is BreakerState.OPEN:
            self._log.warning("%s: circuit breaker open after %d consecutive failed poll(s); next probe in %.0f s",
                              self.name, change.consecutive_failures, change.cooldown_s or 0)
            self._send_changed({HEALTH_BREAKER: change.new.value})
            self._leave_platform()
            return
        elif change.new is BreakerState.HALF_OPEN:
            self._log.info("%s: circuit breaker half-open; probing the meter", self.name)
        else:
            self._log.info("%s: circuit breaker closed; meter answers again", self.name)
        self._send_changed({HEALTH_BREAKER: change.new.value})

    def call_ended(self) -> None:
        """A meter that calls in hung up: say so, and disconnect it at ThingsBoard until it calls again."""
        self.set_health(f"{self.name}: meter not connected (it closed its connection; polled again when it "
                        "calls in)")
        self._leave_platform()

    # -- health -----------------------------------------------------------------------------------

    def set_health(self, error: str | None) -> None:
        connected = error is None
        if connected and not self.on_platform:
            self.on_platform = True  # its data (sent just before) has connected it again
            self._log.info("%s: meter answers again; connected at ThingsBoard", self.name)
            if self._presence is not None:
                self._presence(True)
        if error is not None:
            self.last_error = error
        health: dict[str, Any] = {HEALTH_CONNECTED: connected}
        if error is not None:
            health[HEALTH_LAST_ERROR] = error
        self._send_changed(health)

    def data_arrived(self) -> None:
        """Data from the meter outside a poll (a push) reconnects the device at ThingsBoard."""
        if not self.on_platform:
            self.on_platform = True
            if self._presence is not None:
                self._presence(True)

    def note_oversized(self, oversized: Any) -> None:
        """A value too large for ThingsBoard was dropped (gateway/payload_limit.py): said once per key."""
        self.oversized_values += 1
        message = oversized.describe(self.name)
        if self._oversized_keys.get(oversized.key) != oversized.size:
            self._oversized_keys[oversized.key] = oversized.size
            self._log.error("%s", message)
        self.last_error = message
        self._send_changed({HEALTH_LAST_ERROR: message})

    def note_storage(self, problem: str | None) -> None:
        """The gateway's storage refuses data (a full disk, a full memory storage) or takes it again:
        said once per episode, in the log and in ``lastError``; the counter counts every refusal."""
        if problem is not None:
            self.storage_refusals += 1
            if self.storage_error is not None:
                return
            self.storage_error = problem
            self._storage_refusing_since = time.time()
            self.last_error = f"gateway storage refuses data: {problem}"
            self._log.warning("%s: the gateway's storage refuses data (%s): live readings are lost until it takes "
                              "data again; profile intervals stay in the meter and are read again", self.name, problem)
            self._send_changed({HEALTH_LAST_ERROR: self.last_error})  # lost too while it refuses
        elif self.storage_error is not None:
            since = _dt_iso(self._storage_refusing_since)
            self._log.info("%s: the gateway's storage takes data again (refusing since %s, %d hand-over(s) "
                           "refused)", self.name, since, self.storage_refusals)
            error, self.storage_error = self.storage_error, None
            # What ThingsBoard could not be told while the storage refused: the gap in the readings.
            self.last_error = f"gateway storage refused data from {since} to {_dt_iso(time.time())}: {error}"
            self._send_changed({HEALTH_LAST_ERROR: self.last_error})

    # -- presence ---------------------------------------------------------------------------------

    def _leave_platform(self) -> None:
        """The meter stopped answering (breaker open): disconnect it at ThingsBoard, after the health
        that says why, so its "active" state follows the meter, not the gateway's own connection."""
        if self._presence is None:
            return
        # RPCs still reach a meter disconnected here (launcher/rpc_routing.py): a meter that calls
        # in answers them "meter not connected" (or waits callInWaitS) while it is away.
        if self.on_platform:
            self.on_platform = False
            self.platform_disconnects += 1
            self._log.info("%s: not answering; disconnected at ThingsBoard until it answers again", self.name)
        self._presence(False)  # again on every re-open: the connector checks it took effect

    def _send_changed(self, health: dict[str, Any]) -> None:
        changed = {k: v for k, v in health.items() if self._sent.get(k) != v}
        if not self.on_platform:
            self._held.update(changed)  # published when the meter answers again
            self._sent.update(changed)
            return
        changed = {**self._held, **changed}
        self._held.clear()
        if not changed:
            return
        data = ConvertedData(self.name, self._type)
        for key, value in changed.items():
            data.add_to_attributes(DatapointKey(key), value)
        self._publish(data)
        self._sent.update(changed)
