"""Disconnect control (class 70): the meter's relay, read from its attributes and switched by its methods.

Blue Book 4.5.8: ``output_state`` (2) is the relay itself, ``control_state`` (3) what the meter
means it to be (a relay disconnected locally waits in "ready_for_reconnection" until the button
is pressed), ``control_mode`` (4) which transitions are allowed at all. The methods take a
dummy integer parameter; int8 0 is what the meters we met accept.
"""
from __future__ import annotations

from typing import Any, Final, Protocol, Sequence

from .obis import ObisCode
from .readings import AttributeRef, Reading
from .writable import METHOD_PARAMETER_TYPE

DISCONNECT_CONTROL_CLASS: Final = 70
OUTPUT_STATE, CONTROL_STATE, CONTROL_MODE = 2, 3, 4
REMOTE_DISCONNECT, REMOTE_RECONNECT = 1, 2
CONTROL_STATES: Final[dict[int, str]] = {0: "disconnected", 1: "connected", 2: "ready_for_reconnection"}


class RelaySession(Protocol):
    """What these operations need of a meter session (``MeterSession`` and the gateway's ``SessionLike``)."""

    async def read(self, refs: Sequence[AttributeRef]) -> list[Reading]: ...

    async def action(self, ref: AttributeRef, value: Any = 0, data_type_name: str | None = "int8") -> Any: ...


class RelayStateUnread(Exception):
    """The meter refused the relay's output or control state."""


def _ref(obis: ObisCode, index: int) -> AttributeRef:
    return AttributeRef(obis, DISCONNECT_CONTROL_CLASS, index)


async def relay_state(session: RelaySession, obis: ObisCode) -> dict[str, Any]:
    """``{"obis", "outputState", "controlState", "controlMode"}``; the mode is None when the meter hides it."""
    output, control, mode = await session.read([_ref(obis, a) for a in (OUTPUT_STATE, CONTROL_STATE, CONTROL_MODE)])
    for reading in (output, control):
        if reading.error is not None:
            raise RelayStateUnread(f"relay state not read: {reading.error}")
    state = control.value
    return {"obis": str(obis), "outputState": bool(output.value),
            "controlState": CONTROL_STATES.get(state, f"state {state}"),
            "controlMode": mode.value if mode.error is None else None}


async def disconnect(session: RelaySession, obis: ObisCode) -> None:
    """remote_disconnect (method 1): the meter opens the relay if its control mode allows it."""
    await session.action(_ref(obis, REMOTE_DISCONNECT), 0, METHOD_PARAMETER_TYPE)


async def reconnect(session: RelaySession, obis: ObisCode) -> None:
    """remote_reconnect (method 2): closes the relay, or arms it for the customer's button (by control mode)."""
    await session.action(_ref(obis, REMOTE_RECONNECT), 0, METHOD_PARAMETER_TYPE)
