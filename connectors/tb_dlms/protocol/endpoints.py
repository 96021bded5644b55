"""The link provider of a connector: links we dial (``pools.link_pool()``: TCP, UDP, serial) and the links
of meters that call in (the listeners' ``listener.InboundHub``).

Which one a session gets is a fact of its settings (``transport``, ``listener``), so the session
itself never knows whether it dialled, sends datagrams, or answers a meter that dialled us.
"""
from __future__ import annotations

from .limits import ConnectionLimits
from .link import Link, Mailbox
from .listener import InboundHub
from .pools import link_pool
from .settings import MeterSettings


class EndpointPool:
    """A ``link.LinkProvider``: meters that call in go to the hub, the others to the dialling pool
    (TCP, UDP and serial links; its TCP connections capped by ``limits``: the connector's
    maxConnections/maxNewConnectionsPerS)."""

    def __init__(self, hub: InboundHub | None = None, limits: ConnectionLimits | None = None) -> None:
        self.hub = hub or InboundHub()
        self.dialled = link_pool(limits)

    def acquire(self, settings: MeterSettings) -> tuple[Link, Mailbox]:
        if settings.inbound:
            return self.hub.acquire(settings)
        return self.dialled.acquire(settings)

    async def release(self, link: Link, address: int) -> None:
        if self.hub.owns(link):
            await self.hub.release(link, address)
        else:
            await self.dialled.release(link, address)
