"""The link pool a connector (or a tool) uses: every kind of endpoint a meter's settings can name.

``transport.LinkPool`` knows TCP; the other kinds (UDP datagrams, the gateway's serial ports) come
in as makers, so transport never imports their modules (serial_link and udp build on transport's
``StreamLink``/``Routing``: importing them back would be a cycle). The serial maker imports pyserial
on first use, so a gateway without serial meters never loads it. Meters that call in are the one
case outside this pool: ``endpoints.EndpointPool`` hands them to the listeners' hub and everything
else to ``link_pool()``.
"""
from __future__ import annotations

from .limits import ConnectionLimits
from .settings import MeterSettings
from .transport import LinkMaker, LinkPool, StreamLink
from .udp import UdpLink


def _serial_link(settings: MeterSettings) -> StreamLink:
    from .serial_link import SerialLink

    return SerialLink.for_meter(settings)


#: Endpoint kinds beyond TCP and the link each gets (``transport.Endpoint.kind``).
MAKERS: dict[str, LinkMaker] = {"udp": UdpLink.for_meter, "serial": _serial_link}


def link_pool(limits: ConnectionLimits | None = None) -> LinkPool:
    """A pool reaching meters over TCP (capped by ``limits``: the connector's maxConnections and
    maxNewConnectionsPerS), UDP, and on the gateway's serial ports."""
    return LinkPool(MAKERS, limits)
