"""The link pool a connector (or a tool) uses: every kind of endpoint a meter's settings can name.

``transport.LinkPool`` knows TCP; the other kinds come in as makers, so transport never imports
their modules (serial_link subclasses transport's ``StreamLink``: importing it back would be a
cycle). The serial maker imports pyserial on first use, so a gateway without serial meters never
loads it.
"""
from __future__ import annotations

from .settings import MeterSettings
from .transport import LinkMaker, LinkPool, StreamLink


def _serial_link(settings: MeterSettings) -> StreamLink:
    from .serial_link import SerialLink

    return SerialLink.for_meter(settings)


#: Endpoint kinds beyond TCP and the link each gets (``transport.Endpoint.kind``).
MAKERS: dict[str, LinkMaker] = {"serial": _serial_link}


def link_pool() -> LinkPool:
    """A pool reaching meters over TCP and on the gateway's serial ports."""
    return LinkPool(MAKERS)
