"""What the adapter needs from a meter session, and the factory that makes the real ones.

The adapter only talks to this protocol, so tests drive it with fakes and the protocol layer can
change underneath without touching ThingsBoard code.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

from ..protocol.readings import AttributeRef, Reading
from ..protocol.settings import MeterSettings
from ..protocol.stats import SessionStats


class SessionLike(Protocol):
    stats: SessionStats

    @property
    def associated(self) -> bool: ...

    async def connect(self) -> None: ...

    async def read(self, refs: Sequence[AttributeRef]) -> list[Reading]: ...

    async def get(self, ref: AttributeRef) -> Reading: ...

    async def keep_alive(self) -> bool: ...

    async def close(self) -> None: ...


#: Makes one session for one meter. Called on the polling loop, again after a session had to be dropped.
SessionFactory = Callable[[MeterSettings], SessionLike]


def meter_session_factory(hub: Any = None) -> SessionFactory:
    """Real sessions sharing one link pool, so HDLC meters behind one serial server share its TCP link.

    The protocol module is imported on first use: unit tests with fake sessions never load gurux.
    """
    pool: Any = None

    def make(settings: MeterSettings) -> SessionLike:
        nonlocal pool
        from ..protocol.session import MeterSession
        from ..protocol.endpoints import EndpointPool

        if pool is None:
            # TCP, UDP and the links of meters that call in (the hub's, protocol/listener.py).
            pool = EndpointPool(hub)
        return MeterSession(settings, links=pool)

    return make
