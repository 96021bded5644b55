"""Narrow fixes to gurux-dlms 1.0.203's client side, applied once at import of the session.

GET-with-list: gurux keeps only the *last* data-access-result of a list response and leaves
``None`` in the failed slots, so a poll cannot tell which OBIS code failed, nor why. We replace
that one parser with one that leaves an ``AccessResult`` in each failed slot. It also tolerates a
result byte without its code (seen from gurux's own server) instead of raising IndexError.
"""
from __future__ import annotations

from dataclasses import dataclass

from gurux_dlms.GXDLMS import GXDLMS
from gurux_dlms.internal._GXCommon import _GXCommon

#: data-access-result names (Blue Book 9.3.x / Green Book), for errors a user can act on.
ACCESS_RESULTS = {
    0: "success", 1: "hardware-fault", 2: "temporary-failure", 3: "read-write-denied",
    4: "object-undefined", 9: "object-class-inconsistent", 11: "object-unavailable",
    12: "type-unmatched", 13: "scope-of-access-violated", 14: "data-block-unavailable",
    15: "long-get-aborted", 16: "no-long-get-in-progress", 17: "long-set-aborted",
    18: "no-long-set-in-progress", 19: "data-block-number-invalid", 250: "other-reason",
}


@dataclass(frozen=True, slots=True)
class AccessResult:
    code: int

    @property
    def name(self) -> str:
        return ACCESS_RESULTS.get(self.code, f"data-access-result {self.code}")


def _handle_get_response_with_list(cls, settings, reply):  # noqa: ARG001 - gurux signature
    if reply.xml:  # translator mode: keep gurux's own behaviour
        return _original(settings, reply)
    cnt = _GXCommon.getObjectCount(reply.data)
    values: list = [None] * cnt
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


def write_request(client, obis, class_id: int, attribute: int, value, data_type: int) -> list:
    """SET request frames for any attribute with an explicit data type.

    gurux's public ``write(item, index)`` takes the value from a fully modelled object; a typed
    write of one attribute only exists as the name-mangled private ``__write``.
    """
    return client._GXDLMSClient__write(str(obis), value, data_type, class_id, attribute)
