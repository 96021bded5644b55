"""The link pool of a connector: TCP (``transport.LinkPool``), UDP, and meters that call in.

Which link a session gets is a fact of its settings (``extra["transport"]``, ``extra["listener"]``),
so the session itself never knows whether it dialled, sends datagrams, or answers a meter that
dialled us.
"""
from __future__ import annotations

from .inbound import InboundLink
from .listener import InboundHub
from .settings import MeterSettings
from .transport import LinkPool, Mailbox
from .udp import UdpLink


class EndpointPool(LinkPool):
    def __init__(self, hub: InboundHub | None = None) -> None:
        super().__init__()
        self.hub = hub or InboundHub()

    def acquire(self, settings: MeterSettings):
        extra = settings.extra or {}
        listener = extra.get("listener")
        if listener:
            link = self.hub.link_for(listener, extra["identity"], settings.label, extra.get("call_in_wait_s", 0.0))
            return link, link.mailbox(settings.server_address)
        if extra.get("transport") == "udp":
            link = UdpLink(settings.host, settings.port, settings.interface, settings.connect_timeout)
            return link, link.mailbox(settings.server_address)
        return super().acquire(settings)

    async def release(self, link, address: int) -> None:
        if isinstance(link, InboundLink):
            link.forget(address)  # the connection is the meter's: it stays while the meter keeps it
            return
        if isinstance(link, UdpLink):
            link.forget(address)
            await link.close()
            return
        await super().release(link, address)


__all__ = ["EndpointPool", "Mailbox"]
