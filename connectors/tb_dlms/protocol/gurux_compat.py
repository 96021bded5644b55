"""Narrow fixes to gurux-dlms 1.0.203's client side, applied once at import of the session.

GET-with-list: gurux keeps only the *last* data-access-result of a list response and leaves
``None`` in the failed slots, so a poll cannot tell which OBIS code failed, nor why. We replace
that one parser with one that leaves an ``AccessResult`` in each failed slot. It also tolerates a
result byte without its code (seen from gurux's own server) instead of raising IndexError.
"""
from __future__ import annotations

import struct
from typing import Any

from gurux_dlms import GXByteBuffer, GXDLMSClient
from gurux_dlms.GXDLMS import GXDLMS
from gurux_dlms.enums import InterfaceType
from gurux_dlms.internal._GXCommon import _GXCommon

from .axdr import AccessResult

__all__ = ["AccessResult", "write_request", "frames_for_pdu", "is_ciphered"]


def _handle_get_response_with_list(cls: Any, settings: Any, reply: Any) -> Any:  # noqa: ARG001 - gurux signature
    if reply.xml:  # translator mode: keep gurux's own behaviour
        return _original(settings, reply)
    cnt = _GXCommon.getObjectCount(reply.data)
    values: list[Any] = [None] * cnt
    for pos in range(cnt):
        choice = reply.data.getUInt8()
        if choice != 0:
            code = reply.data.getUInt8() if reply.data.available() else 250
            values[pos] = AccessResult(code)
            continue
        reply.readPosition = reply.data.position
        GXDLMS.getValueFromData(settings, reply)
        if reply.value is None:
            reply.readPosition = 1 + reply.readPosition
        reply.data.position = reply.readPosition
        values[pos] = reply.value
        reply.value = None
    reply.value = values


_original = GXDLMS.handleGetResponseWithList
if not getattr(_original, "_tb_dlms", False):
    _patched = classmethod(_handle_get_response_with_list)
    _patched.__func__._tb_dlms = True  # type: ignore[attr-defined]
    GXDLMS.handleGetResponseWithList = _patched
else:  # pragma: no cover - module reloaded
    pass


def write_request(client: GXDLMSClient, obis: object, class_id: int, attribute: int, value: Any,
                  data_type: int) -> list[bytes]:
    """SET request frames for any attribute with an explicit data type.

    gurux's public ``write(item, index)`` takes the value from a fully modelled object; a typed
    write of one attribute only exists as the name-mangled private ``__write``.
    """
    frames: list[bytes] = client._GXDLMSClient__write(str(obis), value, data_type, class_id, attribute)
    return frames


def is_ciphered(client: GXDLMSClient) -> bool:
    cipher = getattr(client.settings, "cipher", None)
    return cipher is not None and cipher.security != 0


def frames_for_pdu(client: GXDLMSClient, pdu: bytes, command: int) -> list[bytes] | None:
    """Frame an APDU we built ourselves exactly as gurux frames its own (LLC, HDLC sequence).

    Returns None when the PDU would need HDLC segmentation: gurux's own path handles that.
    """
    settings = client.settings
    if settings.interfaceType == InterfaceType.WRAPPER:
        # IEC 62056-47 header: version 1, source wPort (client), destination wPort, length.
        return [struct.pack(">HHHH", 1, settings.clientAddress, settings.serverAddress, len(pdu)) + pdu]
    buf = GXByteBuffer()
    buf.set(_GXCommon.LLC_SEND_BYTES)
    buf.set(pdu)
    if len(buf) > settings.hdlc.maxInfoTX:
        return None
    return [GXDLMS.getHdlcFrame(settings, 0, buf)]
