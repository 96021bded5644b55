"""Workarounds for server-side bugs in gurux-dlms 1.0.203 (the client side is fine).

The Python port of the Gurux server was never exercised end to end; its command handlers call
methods that do not exist. Each fix is one function below, named for what it repairs, with the
bug in its docstring and the gurux version it was written against: :func:`apply` runs them all
once, and warns for each fix when another gurux-dlms is installed (the bug may be gone, or the
patched code changed under it), so a new gurux is re-checked fix by fix before it is pinned.
Fixes only add missing methods or replace methods that cannot work as shipped; none changes
client behaviour but ``hdlc_long_frames``, which is the client's own fix (protocol/hdlc_fixes.py).

Fixed in classes (they are the server, so they cannot be patched in): ``FixedAssociationLN``
(HLS answer as bytes, ``getAssociationStatus``, access rights in the association view) and
``FixedServerBase`` (cipher where it is read, SNRM/UA negotiation, association object list).
``onValidateAuthentication`` must return a ``SourceDiagnostic`` (the abstract one raises): that
is meter.py's subclass's job. ``FixedAssociationLN.invoke`` also answers HLS pass 3 for mechanisms
2/3/4/6/7 with our own implementation (simulator/hls.py: hashlib, ``cryptography``), because
gurux's server answers them through ``GXSecure``, the client's own code: the simulator is then a
second implementation to test the client against, not the same code twice.
"""
from __future__ import annotations

import importlib.metadata
import warnings
from typing import Any, Callable

from gurux_dlms import GXDLMSServer, GXServerReply, ValueEventArgs
from gurux_dlms.GXCiphering import GXCiphering
from gurux_dlms.GXDLMS import GXDLMS
from gurux_dlms.GXDLMSSettings import GXDLMSSettings
from gurux_dlms.GXByteBuffer import GXByteBuffer
from gurux_dlms.ConnectionState import ConnectionState
from gurux_dlms._GXAPDU import _GXAPDU
from gurux_dlms.GXDLMSLongTransaction import GXDLMSLongTransaction
from gurux_dlms.AesGcmParameter import AesGcmParameter
from gurux_dlms.enums import Command, Conformance, ErrorCode, InterfaceType, RequestTypes, Security
from gurux_dlms._HDLCInfo import _HDLCInfo
from gurux_dlms.objects import GXDLMSAssociationLogicalName
from gurux_dlms.objects.enums.AssociationStatus import AssociationStatus
from gurux_dlms.enums import Authentication
from gurux_dlms.GXSecure import GXSecure
from gurux_dlms.secure import GXDLMSSecureServer

from ..protocol import hdlc_fixes
from . import hls

#: The gurux-dlms release the fixes below were written against (pyproject.toml pins it).
GURUX_VERSION = "1.0.203"


class GuruxVersionWarning(UserWarning):
    """A fix written for one gurux-dlms release is applied to another."""


#: Every fix, in the order :func:`apply` runs them: (function, gurux version it is for).
FIXES: list[tuple[Callable[[], None], str]] = []
_applied = False


def server_fix(for_version: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register a fix written against gurux-dlms ``for_version``."""
    def register(fix: Callable[[], None]) -> Callable[[], None]:
        FIXES.append((fix, for_version))
        return fix
    return register


def installed_gurux_version() -> str | None:
    try:
        return importlib.metadata.version("gurux-dlms")
    except importlib.metadata.PackageNotFoundError:  # a source checkout of gurux on the path
        return None


def check_version(fix: Callable[[], None], for_version: str, installed: str | None) -> bool:
    """True when ``fix`` is for the installed gurux; else a :class:`GuruxVersionWarning` naming both."""
    if installed == for_version:
        return True
    warnings.warn(GuruxVersionWarning(
        f"simulator fix {fix.__name__} was written for gurux-dlms {for_version}, installed is "
        f"{installed or 'unknown'}: check that the bug it works around is still there"), stacklevel=3)
    return False


def apply() -> None:
    """Run every fix once (idempotent), each checked against the installed gurux version."""
    global _applied
    if _applied:
        return
    _applied = True
    installed = installed_gurux_version()
    for fix, for_version in FIXES:
        check_version(fix, for_version, installed)
        fix()


@server_fix("1.0.203")
def server_reply_accessors() -> None:
    """``GXServerReply`` lacks ``setReply``/``getConnectionInfo``/``getCount``/``setCount``, which
    ``GXDLMSServer.handleRequest`` and ``handleCommand`` call for every request."""
    def set_reply(self: Any, value: Any) -> None:
        self.reply = value

    GXServerReply.setReply = set_reply
    GXServerReply.getConnectionInfo = lambda self: self.connectionInfo
    GXServerReply.getCount = lambda self: self.count
    GXServerReply.setCount = lambda self, value: setattr(self, "count", value)


@server_fix("1.0.203")
def server_notifications() -> None:
    """``GXDLMSServer`` lacks ``notifyRead``, ``setTransaction``/``getTransaction`` and
    ``notifyConnected`` (called by ``GXDLMSLNCommandHandler`` on GET, block transfer and HLS)."""
    if not hasattr(GXDLMSServer, "notifyRead"):
        GXDLMSServer.notifyRead = lambda self, *args: None
    if not hasattr(GXDLMSServer, "setTransaction"):
        GXDLMSServer.setTransaction = lambda self, value: setattr(self, "transaction", value)
        GXDLMSServer.getTransaction = lambda self: self.transaction
    if not hasattr(GXDLMSServer, "notifyConnected"):
        GXDLMSServer.notifyConnected = lambda self, info: self.onConnected(info)


@server_fix("1.0.203")
def iterable_value_event_args() -> None:
    """``handleMethodRequest`` calls ``onPreAction(list(e))`` on a single ``ValueEventArgs``:
    make it iterable (yielding itself)."""
    if not hasattr(ValueEventArgs, "__iter__"):
        ValueEventArgs.__iter__ = lambda self: iter((self,))


@server_fix("1.0.203")
def settings_accessors() -> None:
    """``GXDLMSSettings`` lacks ``gbtWndowSize`` (typo read by ``getRequestNextDataBlock``),
    ``getMaxPduSize``, ``setConnected`` (HLS completion) and ``getUserId`` (AARQ parsing)."""
    if not hasattr(GXDLMSSettings, "gbtWndowSize"):
        GXDLMSSettings.gbtWndowSize = property(lambda self: self.gbtWindowSize)
    if not hasattr(GXDLMSSettings, "getMaxPduSize"):
        GXDLMSSettings.getMaxPduSize = lambda self: self.maxPduSize
    if not hasattr(GXDLMSSettings, "setConnected"):
        GXDLMSSettings.setConnected = lambda self, value: setattr(self, "connected", value)
    if not hasattr(GXDLMSSettings, "getUserId"):
        GXDLMSSettings.getUserId = lambda self: self.userId


@server_fix("1.0.203")
def aare_responding_ap_title() -> None:
    """``_GXAPDU.generateAARE`` writes the responding AP title (server system title, needed for
    High-GMAC) as ``A4 08 04`` + a ``setUInt8()`` call without argument (TypeError): the correct
    encoding is ``A4 0A 04 08`` + title. We tolerate the empty call and repair the bytes."""
    # Only the buffer being filled tolerates the argument-less setUInt8, and only for this call:
    # patching GXByteBuffer itself would slow every client in the same process.
    class _TolerantBuffer(GXByteBuffer):
        def setUInt8(self, item: Any = None, index: Any = None) -> None:
            if item is not None:
                GXByteBuffer.setUInt8(self, item, index)

    generate_aare = _GXAPDU.generateAARE

    def fixed_generate_aare(settings: Any, data: Any, result: Any, diagnostic: Any, cipher: Any,
                            errorData: Any, encryptedData: Any) -> None:
        offset = len(data)
        cls = data.__class__
        data.__class__ = _TolerantBuffer
        try:
            generate_aare(settings, data, result, diagnostic, cipher, errorData, encryptedData)
        finally:
            data.__class__ = cls
        title = bytes(cipher.systemTitle) if cipher is not None and cipher.systemTitle else b""
        if not title:
            return
        raw = bytes(data.subArray(offset, len(data) - offset))
        bad = bytes((0xA4, len(title), 0x04)) + title
        i = raw.find(bad)
        if i < 0:
            return
        good = bytearray(raw[:i] + bytes((0xA4, len(title) + 2, 0x04, len(title))) + title + raw[i + len(bad):])
        good[1] = len(good) - 2
        data.size = offset
        data.set(good)

    _GXAPDU.generateAARE = staticmethod(fixed_generate_aare)


@server_fix("1.0.203")
def aare_title_for_hls_sha256_ecdsa() -> None:
    """``_GXAPDU.generateAARE`` sends the responding AP title (the meter's system title) only with
    High-GMAC or ciphering, but HLS-SHA256 and HLS-ECDSA compute their proofs over both system
    titles even unciphered: the client had no title to use. Added, in tag order, for those two.
    Runs after :func:`aare_responding_ap_title`, whose repaired AARE it completes."""
    generate_aare = _GXAPDU.generateAARE

    def generate_aare_with_title(settings: Any, data: Any, result: Any, diagnostic: Any, cipher: Any,
                                 errorData: Any, encryptedData: Any) -> None:
        offset = len(data)
        generate_aare(settings, data, result, diagnostic, cipher, errorData, encryptedData)
        if settings.authentication not in (Authentication.HIGH_SHA256, Authentication.HIGH_ECDSA):
            return
        title = bytes(cipher.systemTitle) if cipher is not None and cipher.systemTitle else b""
        if not title:
            return
        good = _with_responding_title(bytes(data.subArray(offset, len(data) - offset)), title)
        if good is None:
            return
        data.size = offset
        data.set(good)

    _GXAPDU.generateAARE = staticmethod(generate_aare_with_title)


@server_fix("1.0.203")
def initiate_response_suite() -> None:
    """``_GXAPDU.getUserInformation`` (the meter's ciphered InitiateResponse in the AARE) builds its
    ``AesGcmParameter`` without the security suite, so its security control byte says suite 0
    whatever the meter's suite. A client takes the suite from that byte (gurux's does, in
    ``parseUserInformation``): under suites 1/2 HLS-GMAC's pass 3 was then computed with SC 0x10
    instead of 0x11/0x12, and the meter, rightly, refused it. Ciphered with the meter's suite."""
    original = _GXAPDU.getUserInformation

    def user_information_with_suite(cls: Any, settings: Any, cipher: Any) -> Any:
        if cipher is None or not cipher.isCiphered() or not cipher.securitySuite:
            return original(settings, cipher)
        plain = original(settings, None)  # the InitiateResponse itself, not ciphered
        p = AesGcmParameter(Command.GLO_INITIATE_RESPONSE, cipher.systemTitle, cipher.blockCipherKey,
                            cipher.authenticationKey)
        p.security = cipher.security
        p.securitySuite = cipher.securitySuite
        p.invocationCounter = cipher.invocationCounter
        return GXCiphering.encrypt(p, plain)

    _GXAPDU.getUserInformation = classmethod(user_information_with_suite)


@server_fix("1.0.203")
def security_setup_keys_after_reply() -> None:
    """``GXDLMSLNCommandHandler.handleMethodRequest`` calls ``GXDLMSSecuritySetup.applyKeys`` after
    a global_key_transfer even when the server handled the method, and before the reply is
    ciphered: the reply that accepts new keys went out ciphered with them (the client, rightly,
    could not read it). Disabled (a client never calls it); ``Meter.transfer_keys`` unwraps
    (RFC 3394, ``cryptography``) and ``MeterServer`` applies the keys after the reply, as the
    Blue Book says."""
    from gurux_dlms.objects import GXDLMSSecuritySetup

    GXDLMSSecuritySetup.applyKeys = classmethod(lambda cls, settings, e: None)


@server_fix("1.0.203")
def security_setup_key_agreement() -> None:
    """``GXDLMSSecuritySetup.invoke`` answers key_agreement (method 3) by setting ``e.rror`` (a
    typo for ``e.error``), so the meter replies success with no keys; and an action handled in
    ``onPreAction`` cannot return data (``handleMethodRequest`` does ``int(e.value)``). Method 3
    goes to the meter's own implementation (``settings.key_agreement``, set by ``MeterServer``;
    simulator/hls.py ``meter_key_agreement``), which returns the A-XDR answer; without one it is
    refused, as by a meter that does not implement it."""
    from gurux_dlms.objects import GXDLMSSecuritySetup

    shipped = GXDLMSSecuritySetup.invoke

    def invoke(self: Any, settings: Any, e: Any) -> Any:
        if e.index != 3:
            return shipped(self, settings, e)
        handler = getattr(settings, "key_agreement", None)
        answer = handler(e.parameters) if handler is not None else None
        if answer is None:
            e.error = ErrorCode.READ_WRITE_DENIED
            return None
        e.byteArray = True
        return answer

    invoke.__wrapped__ = shipped  # type: ignore[attr-defined]  # the defect test calls the shipped one
    GXDLMSSecuritySetup.invoke = invoke


@server_fix("1.0.203")
def skip_max_pdu_size_name() -> None:
    """``GXDLMSAssociationLogicalName.getObjects`` reads ``e.isSkipMaxPduSize``; the attribute is
    ``skipMaxPduSize``. (Its other half, access rights in the view: ``FixedAssociationLN``.)"""
    if not hasattr(ValueEventArgs, "isSkipMaxPduSize"):
        ValueEventArgs.isSkipMaxPduSize = property(lambda self: self.skipMaxPduSize)


@server_fix("1.0.203")
def long_transaction_set_data() -> None:
    """``GXDLMSLongTransaction`` lacks ``setData`` (called for every GET block after the second):
    store the unsent remainder of the reply, as the constructor does."""
    if not hasattr(GXDLMSLongTransaction, "setData"):
        def set_data(self: Any, value: Any) -> None:
            self.data = GXByteBuffer()
            self.data.set(value)

        GXDLMSLongTransaction.setData = set_data


@server_fix("1.0.203")
def set_request_parameters() -> None:
    """``handleSetRequestNormal`` calls ``GXDLMSLNParameters.isMultipleBlocks()`` and
    ``setStatus()``, which do not exist (the attributes are ``multipleBlocks`` and ``status``):
    every SET was answered hardware-fault, and a refused one (read-only attribute, unknown
    object) not at all."""
    from gurux_dlms.GXDLMSLNParameters import GXDLMSLNParameters

    if not hasattr(GXDLMSLNParameters, "isMultipleBlocks"):
        GXDLMSLNParameters.isMultipleBlocks = lambda self: self.multipleBlocks
    if not hasattr(GXDLMSLNParameters, "setStatus"):
        GXDLMSLNParameters.setStatus = lambda self, value: setattr(self, "status", value)


@server_fix("1.0.203")
def reply_invoke_id() -> None:
    """``GXDLMSSettings.updateInvokeId`` (server side only) stores the request's invoke id as
    ``invokeID`` while replies built without an explicit id read ``invokeId``: an error reply
    (undefined object) carried a stale invoke id and the client rightly dropped it."""
    update_invoke_id = GXDLMSSettings.updateInvokeId

    def fixed_update_invoke_id(self: Any, value: Any) -> None:
        update_invoke_id(self, value)
        self.invokeId = self.invokeID

    GXDLMSSettings.updateInvokeId = fixed_update_invoke_id


@server_fix("1.0.203")
def ciphered_request_parameters() -> None:
    """``GXDLMS.handleGloDedRequest`` (server decrypting a glo-/ded- request) builds its
    ``AesGcmParameter`` without the tag argument, shifting system title/keys by one: every
    ciphered request fails. Replaced with the same code, arguments in place."""
    GXDLMS.handleGloDedRequest = classmethod(_handle_glo_ded_request)


@server_fix("1.0.203")
def get_with_list_results() -> None:
    """``GXDLMSLNCommandHandler.getRequestWithList`` writes a failed attribute as one byte (the
    error code, or 1 after an exception) instead of ``01 <data-access-result>``, so the rest of
    the GET-with-list reply cannot be parsed: an unknown OBIS code among ten registers loses
    all ten. ``_get_request_with_list`` encodes each result as the Blue Book says."""
    from gurux_dlms.GXDLMSLNCommandHandler import GXDLMSLNCommandHandler

    original_with_list = GXDLMSLNCommandHandler.getRequestWithList

    def get_request_with_list(cls: Any, settings: Any, invokeID: Any, server: Any, data: Any, replyData: Any,
                              xml: Any) -> None:
        if xml:
            return original_with_list(settings, invokeID, server, data, replyData, xml)
        return _get_request_with_list(settings, invokeID, server, data, replyData)

    GXDLMSLNCommandHandler.getRequestWithList = classmethod(get_request_with_list)


@server_fix("1.0.203")
def get_with_list_in_blocks() -> None:
    """A GET-with-list reply larger than the negotiated PDU went out as
    ``c4 03 <invoke> <last-block> <block-number> <length> <data>``: ``GXDLMS.getLNPdu`` turns only
    a Get-Response-Normal (type 1) into a Get-Response-With-Datablock (type 2), and the list's
    status 0xFF left out the raw-data choice byte, so no client could read it; nor was the rest
    kept for the next-block requests. Sent now as IEC 62056-5-3 says: type 2, ``00`` (raw-data)
    before the octet string, whose bytes are the list result (count, then a Get-Data-Result each);
    ``_get_request_with_list`` keeps the unsent rest as the long-get transaction."""
    original_get_ln_pdu = GXDLMS.getLNPdu

    def get_ln_pdu(cls: Any, p: Any, reply: Any) -> Any:
        if (p.command == Command.GET_RESPONSE and p.requestType == _GET_WITH_LIST and p.data is not None
                and (p.settings.negotiatedConformance & Conformance.GENERAL_BLOCK_TRANSFER) == 0):
            size = len(p.data) - p.data.position + (_CIPHERING_HEADER_SIZE if _is_ciphered(p.settings) else 0)
            # The test getLNPdu applies (GXDLMS.multipleBlocks): tag, type, invoke id, the data.
            if 3 + size > p.settings.maxPduSize:
                p.requestType, p.status, p.multipleBlocks = _GET_WITH_DATABLOCK, ErrorCode.OK, True
        return original_get_ln_pdu(p, reply)

    GXDLMS.getLNPdu = classmethod(get_ln_pdu)


_GET_WITH_LIST = 3
_GET_WITH_DATABLOCK = 2
#: What gurux adds to a ciphered PDU when it sizes blocks (GXDLMS.__CIPHERING_HEADER_SIZE).
_CIPHERING_HEADER_SIZE = 7 + 12 + 3


def _is_ciphered(settings: Any) -> bool:
    return bool(settings.cipher and settings.cipher.security != Security.NONE)


@server_fix("1.0.203")
def segmented_ciphered_request() -> None:
    """A ciphered request split over several HDLC frames is resumed, once complete, at a cipher
    index that was never set, and fails to decrypt: parse the completed PDU from its first byte."""
    original_get_pdu = GXDLMS.getPdu

    def get_pdu(cls: Any, settings: Any, data: Any) -> Any:
        if (settings.isServer and data.command in _GLO_REQUESTS
                and (data.moreData & RequestTypes.FRAME) == 0 and data.data.position != 0):
            data.command = Command.NONE
            data.data.position = 0
        return original_get_pdu(settings, data)

    GXDLMS.getPdu = classmethod(get_pdu)



@server_fix("1.0.203")
def short_name_read_write() -> None:
    """The SN server (``GXDLMSSNCommandHandler`` read and write) cannot serve a request: float
    attribute indexes, ``server.transaction()`` called, wrong result choices, broken method
    offsets. READ_REQUEST and WRITE_REQUEST go to the server's ``sn`` (a ``short_names.SnServer``)."""
    from gurux_dlms.GXDLMSSNCommandHandler import GXDLMSSNCommandHandler

    def sn_read(cls: Any, settings: Any, server: Any, data: Any, replyData: Any, xml: Any) -> None:  # noqa: ARG001
        server.sn.read(data, replyData)

    def sn_write(cls: Any, settings: Any, server: Any, data: Any, replyData: Any, xml: Any) -> None:  # noqa: ARG001
        server.sn.write(data, replyData)

    GXDLMSSNCommandHandler.handleReadRequest = classmethod(sn_read)
    GXDLMSSNCommandHandler.handleWriteRequest = classmethod(sn_write)

_GLO_REQUESTS = frozenset({
    Command.GLO_GET_REQUEST, Command.GLO_SET_REQUEST, Command.GLO_METHOD_REQUEST,
    Command.DED_GET_REQUEST, Command.DED_SET_REQUEST, Command.DED_METHOD_REQUEST,
})


@server_fix("1.0.203")
def hdlc_long_frames() -> None:
    """``GXDLMS.getHdlcFrame`` announces 256 bytes less than a frame has once its length crosses a
    multiple of 256 (information fields above 128 bytes): the meter's long replies need the same
    fix as the client's requests (``protocol.hdlc_fixes``, shared)."""
    hdlc_fixes.install()


@server_fix("1.0.203")
def hdlc_reply_window() -> None:
    """``GXDLMSServer.handleRequest`` sends one I-frame of a long reply per RR whatever window it
    negotiated. A meter keeps the bus for the whole window: up to ``windowSizeTX`` frames back to
    back, the poll/final bit only on the last, then one RR from the client (on a 9600-baud line a
    window of 7 costs one turnaround, not seven; bench/results/serial.md)."""
    original = GXDLMSServer.handleRequest

    def handle_request(self: Any, sr: Any) -> None:
        original(self, sr)
        if sr.reply and self.settings.interfaceType == InterfaceType.HDLC:
            sr.reply = _rest_of_window(self, bytes(sr.reply))

    GXDLMSServer.handleRequest = handle_request


def _rest_of_window(server: Any, first: bytes) -> bytes:
    settings = server.settings
    frames = [first]
    while settings.hdlc.windowSizeTX > len(frames) and frames[-1][1] & 0x08 and server.replyData.size:
        frames.append(bytes(GXDLMS.getHdlcFrame(settings, settings.getNextSend(False), server.replyData)))
    if len(frames) == 1:
        return first
    # gurux counts one frame per RR in the N(R) it expects from the client next: k frames went.
    rf = settings.receiverFrame
    settings.receiverFrame = (rf & 0x1F) | ((((rf >> 5) + len(frames) - 1) & 7) << 5)
    return b"".join([hdlc_fixes.rebuilt(f, clear_final=True) for f in frames[:-1]] + [frames[-1]])


def _get_request_with_list(settings, invokeID, server, data, replyData) -> None:
    from gurux_dlms import ValueEventArgs as Args
    from gurux_dlms.GXDLMSLNParameters import GXDLMSLNParameters
    from gurux_dlms.enums import AccessMode, ErrorCode, ObjectType
    from gurux_dlms.internal._GXCommon import _GXCommon
    from gurux_dlms.internal._GXDataInfo import _GXDataInfo

    bb = GXByteBuffer()
    cnt = _GXCommon.getObjectCount(data)
    _GXCommon.setObjectCount(cnt, bb)
    items = []
    for _ in range(cnt):
        ci = data.getUInt16()
        ln = bytearray(6)
        data.get(ln)
        index = data.getUInt8()
        selector, parameters = 0, None
        if data.getUInt8() != 0:
            selector = data.getUInt8()
            parameters = _GXCommon.getData(settings, data, _GXDataInfo())
        obj = None
        if ci in ObjectType._value2member_map_:
            name = _GXCommon.toLogicalName(ln)
            obj = settings.objects.findByLN(ObjectType(ci), name) or server.onFindObject(ObjectType(ci), 0, name)
        arg = Args(server, obj, index, selector, parameters)
        arg.invokeId = invokeID
        # Whole values: a value cut at the PDU size (the object list) is continued by gurux's
        # next-block handler as if it were the only one, after the other results.
        arg.skipMaxPduSize = True
        if obj is None:
            arg.error = ErrorCode.UNDEFINED_OBJECT
        elif server.onGetAttributeAccess(arg) == AccessMode.NO_ACCESS:
            arg.error = ErrorCode.READ_WRITE_DENIED
        items.append(arg)
    readable = [a for a in items if not a.error]
    if readable:
        server.onPreRead(readable)
    for arg in items:
        if arg.error:
            bb.setUInt8(1)
            bb.setUInt8(arg.error)
            continue
        try:
            value = arg.value if arg.handled else arg.target.getValue(settings, arg)
            settings.setIndex(0)  # the object list counts its entries here; the next value starts afresh
            settings.setCount(0)
            if arg.error:
                bb.setUInt8(1)
                bb.setUInt8(arg.error)
                continue
            tmp = GXByteBuffer()
            if arg.byteArray:
                tmp.set(value)
            else:
                GXDLMS.appendData(settings, arg.target, arg.index, tmp, value)
            bb.setUInt8(0)
            bb.set(tmp)
        except Exception:  # noqa: BLE001 - one attribute must not spoil the list
            bb.setUInt8(1)
            bb.setUInt8(ErrorCode.HARDWARE_FAULT)
    if readable:
        server.onPostRead(readable)
    p = GXDLMSLNParameters(settings, invokeID, Command.GET_RESPONSE, 3, None, bb, 0xFF)
    GXDLMS.getLNPdu(p, replyData)
    if bb.position != len(bb):  # sent in blocks (get_with_list_in_blocks): the rest is asked for next
        server.setTransaction(GXDLMSLongTransaction(items, Command.GET_REQUEST, bb))


def _handle_glo_ded_request(cls, settings, data):
    if settings.cipher is None:
        raise ValueError("Secure connection is not supported.")
    if (data.moreData & RequestTypes.FRAME) != 0:
        data.data.position = data.data.position - 1
        return
    data.data.position = data.data.position - 1
    cipher = settings.cipher
    dedicated = cipher.dedicatedKey and (settings.connected & ConnectionState.DLMS) != 0
    key = cipher.dedicatedKey if dedicated else cipher.blockCipherKey
    p = AesGcmParameter(0, settings.sourceSystemTitle, key, cipher.authenticationKey)
    tmp = GXCiphering.decrypt(settings, p, data.data)
    settings._onPduEventHandler(data.moreData == 0, tmp)  # pylint: disable=protected-access
    data.data.clear()
    data.data.set(tmp)
    data.command = Command(data.data.getUInt8())


def _with_responding_title(aare: bytes, title: bytes) -> bytearray | None:
    """The AARE with a responding-AP-title element (A4) put in tag order; None when it has one
    already or is not a short-form AARE."""
    if len(aare) < 2 or aare[0] != 0x61 or aare[1] >= 0x80:
        return None
    i = 2
    while i + 1 < len(aare) and aare[i] < 0xA4 and aare[i + 1] < 0x80:
        i += 2 + aare[i + 1]
    if i < len(aare) and aare[i] == 0xA4:
        return None
    element = bytes((0xA4, len(title) + 2, 0x04, len(title))) + title
    good = bytearray(aare[:i] + element + aare[i:])
    good[1] = len(good) - 2
    return good


class FixedAssociationLN(GXDLMSAssociationLogicalName):
    """The association object, fixed where gurux-dlms 1.0.203 cannot work as shipped.

    * ``invoke`` (reply_to_HLS_authentication) does ``int(bytes)`` on the client's challenge
      answer: handled as bytes here.
    * ``handleMethodRequest`` calls ``getAssociationStatus()``, which does not exist.
    * ``getObjects`` lists no access rights because ``e.server`` is never set: ``getValue`` passes
      its server so the association view carries them.
    """

    #: The server whose onGetAttributeAccess/onGetMethodAccess fill the access rights.
    owner: Any = None  # the MeterServer this association belongs to

    def getAssociationStatus(self):
        return self.associationStatus

    def getValue(self, settings, e):
        if e.index != 2 or self.owner is None:
            return super().getValue(settings, e)
        e.server = self.owner
        self.owner.listing = True
        try:
            return super().getValue(settings, e)
        finally:
            self.owner.listing = False

    def invoke(self, settings, e):
        if e.index != 1:
            return super().invoke(settings, e)
        answer = bytes(e.parameters or b"")
        if settings.authentication in hls.SERVER_MECHANISMS:  # our own pass-3 check (module docstring)
            expected = hls.client_proof(settings, self, answer)
            if expected is None:
                self.associationStatus = AssociationStatus.NON_ASSOCIATED
                return None
            self.associationStatus = AssociationStatus.ASSOCIATED
            return hls.server_proof(settings, self)
        if settings.authentication == Authentication.HIGH_GMAC:
            secret = settings.sourceSystemTitle
            ic = int.from_bytes(answer[1:5], "big") if len(answer) >= 5 else 0
        else:
            secret, ic = self.secret, 0
        expected = GXSecure.secure(settings, settings.cipher, ic, settings.stoCChallenge, secret)
        if bytes(expected) != answer:
            self.associationStatus = AssociationStatus.NON_ASSOCIATED
            return None
        if settings.authentication == Authentication.HIGH_GMAC:
            secret, ic = settings.cipher.systemTitle, settings.cipher.invocationCounter
        self.associationStatus = AssociationStatus.ASSOCIATED
        return GXSecure.secure(settings, settings.cipher, ic, settings.ctoSChallenge, secret)


class FixedServerBase(GXDLMSSecureServer):
    """Secure (and plain) LN server, fixed where gurux-dlms 1.0.203 cannot work as shipped.

    * ``GXDLMSSecureServer.__init__`` stores its cipher in ``settings.ciphering`` while everything
      reads ``settings.cipher``: put where it is read.
    * ``handleSnrmRequest`` reads HDLC limits from ``self.hdlc`` (a ``GXDLMSHdlcSetup`` that is
      never set) mixed with ``GXHdlcSettings`` names: negotiated here against the meter's own
      limits (``max_info``/``max_window``; the client may ask for less), UA answered here.
    * ``initialize()`` appends the whole object collection as *one* element of an empty
      association object list (and fails later): ``install_objects`` fills the list first.
    """

    def __init__(self, interface_type, system_title: bytes, max_info: int = 128, max_window: int = 1,
                 logical_names: bool = True):
        super().__init__(logical_names, interface_type)
        self.settings.cipher = GXCiphering(system_title)  # where gurux reads it
        self.max_info = max_info
        self.max_window = max_window

    def install_objects(self, association, objects) -> None:
        """Fill the association view before ``initialize()`` (which cannot)."""
        for obj in objects:
            self.settings.objects.append(obj)
            association.objectList.append(obj)
        self.settings.objects.append(association)
        association.objectList.append(association)
        self.initialize()

    def handleSnrmRequest(self, data):
        hdlc = self.settings.hdlc
        hdlc.maxInfoTX = hdlc.maxInfoRX = 128
        hdlc.windowSizeTX = hdlc.windowSizeRX = 1
        GXDLMS.parseSnrmUaResponse(data, hdlc)
        hdlc.maxInfoTX = min(hdlc.maxInfoTX, self.max_info)
        hdlc.maxInfoRX = min(hdlc.maxInfoRX, self.max_info)
        hdlc.windowSizeTX = min(hdlc.windowSizeTX, self.max_window)
        hdlc.windowSizeRX = min(hdlc.windowSizeRX, self.max_window)
        self.reset(True)
        _write_ua_parameters(self.replyData, hdlc)
        self.settings.connected = ConnectionState.HDLC

    def generateDisconnectRequest(self):
        """UA to DISC carries the same negotiated limits (gurux reads them from ``self.hdlc``)."""
        _write_ua_parameters(self.replyData, self.settings.hdlc)


def _write_ua_parameters(reply, hdlc) -> None:
    """The UA's information field: the negotiated max info field lengths and window sizes."""
    reply.setUInt8(0x81)
    reply.setUInt8(0x80)
    reply.setUInt8(0)
    reply.setUInt8(_HDLCInfo.MAX_INFO_TX)
    GXDLMS.appendHdlcParameter(reply, hdlc.maxInfoTX)
    reply.setUInt8(_HDLCInfo.MAX_INFO_RX)
    GXDLMS.appendHdlcParameter(reply, hdlc.maxInfoRX)
    reply.setUInt8(_HDLCInfo.WINDOW_SIZE_TX)
    reply.setUInt8(4)
    reply.setUInt32(hdlc.windowSizeTX)
    reply.setUInt8(_HDLCInfo.WINDOW_SIZE_RX)
    reply.setUInt8(4)
    reply.setUInt32(hdlc.windowSizeRX)
    reply.setUInt8(2, len(reply) - 3)


__all__ = ["apply", "FIXES", "GURUX_VERSION", "FixedAssociationLN", "FixedServerBase", "GXByteBuffer"]
