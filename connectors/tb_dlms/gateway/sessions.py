"""What the adapter needs from a meter session, and the factory that makes the real ones.

The adapter only talks to this protocol, so tests drive it with fakes and the protocol layer can
change underneath without touching ThingsBoard code.
"""
from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from ..protocol.link import LinkProvider
from ..protocol.obis import ObisCode
from ..protocol.profile import ProfileData
from ..protocol.readings import AttributeRef, Reading
from ..protocol.settings import MeterSettings
from ..protocol.stats import SessionStats

if TYPE_CHECKING:
    from ..protocol.limits import ConnectionLimits
    from ..protocol.listener import InboundHub


class SessionLike(Protocol):
    """Everything the gateway and the tools do with a meter session (``protocol.session.MeterSession``).

    Operations queue on the session (one at a time per meter) and raise ``protocol.errors``
    kinds; a failed one leaves the session to re-associate on next use.
    """

    #: Assigned by the device, so counters survive a session that had to be dropped.
    stats: SessionStats

    @property
    def settings(self) -> MeterSettings: ...

    @property
    def associated(self) -> bool: ...

    @property
    def identification(self) -> str | None:
        """The IEC 62056-21 identification an optical probe's mode E sign-on read; None otherwise."""
        ...

    async def connect(self) -> None: ...

    async def read(self, refs: Sequence[AttributeRef]) -> list[Reading]: ...

    async def get(self, ref: AttributeRef) -> Reading: ...

    async def set(self, ref: AttributeRef, value: Any, data_type_name: str | None = None) -> None: ...

    async def action(self, ref: AttributeRef, value: Any = 0, data_type_name: str | None = "int8") -> Any: ...

    async def read_profile(self, obis: ObisCode | str, start: _dt.datetime | None = None,
                           end: _dt.datetime | None = None, *, entries: tuple[int, int] | None = None,
                           local_offset_min: int | None = None) -> ProfileData: ...

    async def profile_entries(self, obis: ObisCode | str) -> int: ...

    async def keep_alive(self) -> bool: ...

    def scaler_of(self, ref: AttributeRef) -> int | None:
        """The scaler of a register read in this association (None: not read): pushes carry raw values."""
        ...

    async def change_keys(self, block_cipher_key: bytes, authentication_key: bytes,
                          security_setup: ObisCode | None = None) -> None:
        """New global keys through the Security Setup object (None: 0.0.43.0.0.255), then an
        association with them; returns only once that works. ``AccessError``: refused, the old
        keys stay in use; ``KeysChangedButUnusable``: the meter took them, the old ones are gone."""

    async def close(self) -> None:
        """Release the association and close the link. Never raises."""

    async def abort(self) -> None:
        """Drop the association without a word to the meter (its state is unknown)."""


#: Makes one session for one meter. Called on the polling loop, again after a session had to be dropped.
SessionFactory = Callable[[MeterSettings], SessionLike]


def meter_session_factory(hub: InboundHub | None = None, limits: ConnectionLimits | None = None) -> SessionFactory:
    """Real sessions sharing one link pool, so HDLC meters behind one serial server share its TCP link
    (and the meters of one RS-485 bus its serial port); meters that call in get the links of
    ``hub``'s listeners; dialled TCP links are capped by ``limits``.

    The protocol module is imported on first use: unit tests with fake sessions never load gurux.
    """
    pool: LinkProvider | None = None

    def make(settings: MeterSettings) -> SessionLike:
        nonlocal pool
        from ..protocol.endpoints import EndpointPool
        from ..protocol.session import MeterSession

        if pool is None:
            pool = EndpointPool(hub, limits)
        return MeterSession(settings, links=pool)

    return make
