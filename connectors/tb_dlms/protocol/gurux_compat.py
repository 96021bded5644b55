"""Narrow fixes to gurux-dlms 1.0.203's client side, applied once at import of the session.

A GET-with-list reply in data blocks (a small negotiated PDU: 128-256 bytes on many meters makes
even ten registers too large for one) is read with :func:`record_get_with_list` and
:func:`list_result_from_blocks`, below.

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
from gurux_dlms.enums import Command, InterfaceType
from gurux_dlms.GetCommandType import GetCommandType
from gurux_dlms.internal._GXCommon import _GXCommon

from . import axdr
from .axdr import AccessResult

__all__ = ["AccessResult", "write_request", "frames_for_pdu", "is_ciphered", "record_get_with_list",
           "list_result_from_blocks"]


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


def record_get_with_list(client: GXDLMSClient) -> None:
    """Note in gurux's settings that a GET-with-list we framed ourselves is under way.

    gurux 1.0.203 records the request kind only when it builds the request
    (``GXDLMSLNParameters``), and two things read it: ``receiverReady`` asks for the next data
    block with ``settings.command`` (else it sends four bytes no meter answers: the poll timed
    out), and ``handleGetResponseNextDataBlock`` parses the assembled blocks as a list only when
    ``settings.commandType`` is with-list (else as one value: the count byte taken for a tag).
    """
    settings = client.settings
    settings.command = Command.GET_REQUEST
    settings.commandType = GetCommandType.WITH_LIST


def list_result_from_blocks(client: GXDLMSClient, data: bytes) -> list[Any] | None:
    """The values of a GET-with-list reply that came in data blocks, decoded with ``axdr``;
    None when ``data`` is not one (another request, or the reply came in one PDU).

    ``data`` is what gurux 1.0.203 holds once the last block is in: the raw data of all blocks,
    i.e. the list result (count, then a Get-Data-Result each), not a whole GET-Response. gurux's
    own parse takes a short value for "no value" and cannot say which result was cut off; ours
    raises ``axdr.Malformed`` with its index. ``axdr.Unsupported`` (a type ``axdr`` does not
    decode) returns None: gurux's parse stands.
    """
    settings = client.settings
    if settings.command != Command.GET_REQUEST or settings.commandType != GetCommandType.WITH_LIST:
        return None
    # A whole GET-Response (c4 ...) is one PDU; a list result cannot start with c4, which is not
    # an A-XDR length (0x80 | 68 length bytes).
    if not data or data[0] == axdr.GET_RESPONSE:
        return None
    try:
        return axdr.parse_list_result(data)
    except axdr.Unsupported:
        return None
