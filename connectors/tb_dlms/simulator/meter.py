"""One simulated meter: its lasting state, and the gurux server that speaks for it on a link.

``Meter`` is what survives a TCP disconnect (clock offset, disconnector, event log, invocation
counter, counters, faults); it is small because values are computed, not stored. A
``MeterServer`` (gurux sans-IO server) is created per connection, so associations and HDLC state
die with the link as on a real meter, and an idle simulated meter carries no gurux state at all.
"""
from __future__ import annotations

import random
import time

from gurux_dlms import GXServerReply
from gurux_dlms._GXAPDU import _GXAPDU
from gurux_dlms.enums import (
    AccessMode,
    Authentication,
    Command,
    ErrorCode,
    ExceptionServiceError,
    InterfaceType,
    MethodAccessMode,
    Security,
    SourceDiagnostic,
    StateError,
)
from gurux_dlms.GXDateTime import GXDateTime

from gurux_dlms.objects import GXDLMSAssociationShortName

from ..protocol import axdr, cosem_datetime
from ..protocol.axdr import DataType
from . import gurux_fixes, hls, keys, objects as cosem, short_names
from .faults import MALFORMED_SHAPES, FaultState
from .physics import Load
from .profiles import EventLog, LoadProfile, SelectorError
from .spec import PUBLIC_CLIENT, MeterSpec

gurux_fixes.apply()

_LLC_REPLY = bytes((0xE6, 0xE7, 0x00))
_parse_user_information = _GXAPDU.parseUserInformation


def _recording_parse_user_information(settings, cipher, data, xml):
    """gurux turns any failure of the AARQ's user-information (a wrong key fails to decipher it)
    into a bare rejection; a server keeps the cause so that it can answer as a real meter."""
    try:
        return _parse_user_information(settings, cipher, data, xml)
    except Exception as exc:
        if settings.isServer:
            settings.user_information_error = exc
        raise


_GXAPDU.parseUserInformation = staticmethod(_recording_parse_user_information)


def _announce_pdu_size(reply, start: int, size: int) -> None:
    """Overwrite the negotiated max PDU of the plain InitiateResponse in the AARE at ``start``."""
    raw = bytes(reply.subArray(start, len(reply) - start))
    at = raw.find(b"\x06\x5f\x1f\x04\x00")  # DLMS version 6, then the 4-byte conformance block
    if at < 0 or at + 10 > len(raw):
        return  # ciphered: the size is inside the ciphertext
    patched = raw[:at + 8] + size.to_bytes(2, "big") + raw[at + 10:]
    reply.size = start
    reply.set(patched)

_AUTH = {"none": Authentication.NONE, "low": Authentication.LOW, "high": Authentication.HIGH,
         "high_md5": Authentication.HIGH_MD5, "high_sha1": Authentication.HIGH_SHA1,
         "high_gmac": Authentication.HIGH_GMAC, "high_sha256": Authentication.HIGH_SHA256,
         "high_ecdsa": Authentication.HIGH_ECDSA}
_POLICY = {"none": Security.NONE, "authentication": Security.AUTHENTICATION, "encryption": Security.ENCRYPTION,
           "authentication_encryption": Security.AUTHENTICATION_ENCRYPTION}
_LN = lambda text: bytes(int(x) for x in text.split("."))  # noqa: E731
_LOAD_PROFILE = LoadProfile(
    (_LN(cosem.CLOCK), _LN(cosem.ENERGY_IMPORT), _LN(cosem.ENERGY_EXPORT)),
    capacity=96 * 40,
)
_LOAD_PROFILE_4 = LoadProfile(
    (_LN(cosem.CLOCK), *(_LN(ln) for ln in cosem.PROFILE_4_CHANNELS)),
    capacity=96 * 40, registers=tuple(cosem.REGISTER_BY_LN[ln] for ln in cosem.PROFILE_4_CHANNELS),
)
_EVENT_LOG = EventLog((_LN(cosem.CLOCK), _LN(cosem.EVENT_CODE)))
_UNSPECIFIED_DATE = axdr.octets(cosem_datetime.NOT_SPECIFIED)


class Meter:
    """Persistent state and counters of one simulated meter."""

    __slots__ = (
        "spec", "load", "clock_offset", "profile_first", "events", "output_state",
        "control_state", "control_mode", "invocation_counter", "faults", "generation",
        "requests", "replies", "associations", "rejected", "connections", "reboots", "links", "skipped",
        "identity",
        "pending_keys", "key_changes", "key_agreements", "last_agreed_key",
    )

    def __init__(self, spec: MeterSpec, now: float | None = None) -> None:
        self.spec = spec
        wall = time.time() if now is None else now
        self.clock_offset = 0.0
        #: (from, to) meter times a clock jump skipped: no interval was captured in between.
        self.skipped: list[tuple[float, float]] = []
        start = wall - spec.profile_days * 86400
        self.profile_first = (int(start) // cosem.CAPTURE_PERIOD + 1) * cosem.CAPTURE_PERIOD
        self.load = Load.from_seed(spec.rng_seed, origin=start - 86400)
        rnd = random.Random(spec.rng_seed ^ 0x5EED)
        cut = start + rnd.uniform(0, max(1.0, wall - start - 3600))
        adj = start + rnd.uniform(0, max(1.0, wall - start - 3600))
        self.events: list[tuple[float, int]] = sorted([
            (cut, cosem.EVENT_POWER_DOWN), (cut + rnd.randint(5, 3000), cosem.EVENT_POWER_UP),
            (adj, cosem.EVENT_CLOCK_ADJUSTED_OLD), (adj + rnd.randint(1, 30), cosem.EVENT_CLOCK_ADJUSTED_NEW),
        ])
        self.output_state = True
        self.control_state = 1  # connected
        self.control_mode = 4
        self.invocation_counter = rnd.randint(100, 10_000)
        self.faults = FaultState()
        self.generation = 0
        self.requests = self.replies = self.associations = self.rejected = 0
        self.connections = self.reboots = 0
        #: Live links (connections) serving this meter; notified on reboot.
        self.links: set = set()
        #: Logical device name it answers with; a misbehaving meter claims another's (None: its own).
        self.identity: str | None = None
        #: Keys accepted by global_key_transfer, taken into use once the reply is sent (Blue Book).
        self.pending_keys: dict[int, bytes] = {}
        self.key_changes = 0
        #: Associations whose unicast key was agreed (Security Setup method 3) and taken into use.
        self.key_agreements = 0
        #: The key the latest agreement produced (tests check it never reaches a log).
        self.last_agreed_key: bytes | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def now(self) -> float:
        """Meter time (Unix seconds): wall time plus the simulated clock offset."""
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the meter clock (e.g. forward a day to get new profile rows at once)."""
        self.clock_offset += seconds

    def jump_clock(self, seconds: float) -> None:
        """A real clock jump: forward, the skipped intervals are never captured; back (a correction),
        the meter captures again from its corrected time on (``advance_clock`` then lets time pass)."""
        before = self.now()
        self.clock_offset += seconds
        after = self.now()
        if seconds > 0:
            self.skipped.append((before, after))
        else:
            self.skipped = [(lo, min(hi, after)) for lo, hi in self.skipped if lo < after]

    def log_event(self, code: int, when: float | None = None) -> None:
        self.events.append((self.now() if when is None else when, code))
        if len(self.events) > _EVENT_LOG.capacity:
            del self.events[0]

    def reboot(self, close: bool = True) -> None:
        """Power cycle: every association and HDLC link state is lost."""
        self.reboots += 1
        self.generation += 1
        t = self.now()
        self.log_event(cosem.EVENT_POWER_DOWN, t)
        self.log_event(cosem.EVENT_POWER_UP, t + 1)
        for link in list(self.links):
            link.on_reboot(self, close)

    def stats(self) -> dict:
        return {
            "requests": self.requests, "replies": self.replies, "associations": self.associations,
            "rejected": self.rejected, "connections": self.connections, "reboots": self.reboots,
            "key_changes": self.key_changes,
            "key_agreements": self.key_agreements,
            "invocation_counter": self.invocation_counter,
            "faults": {k: f.count for k, f in self.faults.active.items()},
        }

    # ---- per-request values -----------------------------------------------------------
    def read(self, ln: str, index: int, selector: int, params) -> bytes | None:
        """Encoded attribute value, or None to let gurux answer from the shared object."""
        t = self.now()
        if self.faults.active and index == 2:
            hostile = self._hostile_value(ln)
            if hostile is not None:
                return hostile
        reg = cosem.REGISTER_BY_LN.get(ln)
        if reg is not None:
            if index == 2:
                return reg.encode(self.load, t)
            return cosem.SCALER_UNIT[ln] if index == 3 else None
        spec = self.spec
        if index == 2:
            if ln == cosem.SERIAL:
                return axdr.octets(str(spec.serial_number).encode())
            if ln == cosem.LOGICAL_DEVICE_NAME:
                # Padded to 16 bytes with NULs, as meters do: the head-end must strip them.
                return axdr.octets((self.identity or spec.logical_device_name or spec.name).encode().ljust(16, b"\x00"))
            if ln == cosem.SERIAL_RAW:
                return axdr.octets(b"\x00\x9f" + spec.serial.to_bytes(4, "big") + b"\xff\x7f")
            if ln == cosem.FIRMWARE:
                return axdr.octets(spec.firmware.encode())
            if ln == cosem.FRAME_COUNTER:
                return axdr.integer(DataType.UINT32, self.invocation_counter & 0xFFFFFFFF)
            if ln == cosem.EVENT_CODE:
                return axdr.integer(DataType.UINT8, self.events[-1][1] if self.events else 0)
            if ln == cosem.LOAD_PROFILE:
                return _LOAD_PROFILE.encode(self, selector, params, t, spec.reject_range)
            if ln == cosem.LOAD_PROFILE_4:
                return _LOAD_PROFILE_4.encode(self, selector, params, t, spec.reject_range)
            if ln == cosem.EVENT_LOG:
                return _EVENT_LOG.encode(self, selector, params)
        if ln == cosem.CLOCK:
            return self._clock(index, t)
        if ln == cosem.DISCONNECT:
            if index == 2:
                return axdr.boolean(self.output_state)
            if index in (3, 4):
                return axdr.integer(DataType.ENUM, self.control_state if index == 3 else self.control_mode)
        if ln == cosem.LOAD_PROFILE_4 and index in (7, 8):
            return axdr.integer(DataType.UINT32, len(_LOAD_PROFILE_4.row_times(self, t)) if index == 7
                                else _LOAD_PROFILE_4.capacity)
        if ln in (cosem.LOAD_PROFILE, cosem.EVENT_LOG) and index in (7, 8):
            if ln == cosem.EVENT_LOG:
                n = len(self.events) if index == 7 else _EVENT_LOG.capacity
            else:
                n = len(_LOAD_PROFILE.row_times(self, t)) if index == 7 else _LOAD_PROFILE.capacity
            return axdr.integer(DataType.UINT32, n)
        return None

    def _hostile_value(self, ln: str) -> bytes | None:
        """Value faults: a legal but huge octet string, or bytes that are not A-XDR."""
        fault = self.faults.peek("huge_value")
        if fault is not None and fault.obis == ln:
            self.faults.take("huge_value")
            return axdr.octets(b"\xa5" * fault.size)
        fault = self.faults.peek("malformed_value")
        if fault is not None and fault.obis == ln:
            self.faults.take("malformed_value")
            return MALFORMED_SHAPES[fault.shape]
        return None

    def _clock(self, index: int, t: float) -> bytes | None:
        if index == 2:
            return axdr.octets(self.spec.encode_time(t))
        if index == 3:
            return axdr.integer(DataType.INT16, self.spec.wire_deviation)
        if index == 4:
            return axdr.integer(DataType.UINT8, 0)
        if index in (5, 6):
            return _UNSPECIFIED_DATE
        if index == 7:
            return axdr.integer(DataType.INT8, 0)
        if index == 8:
            return axdr.boolean(False)
        if index == 9:
            return axdr.integer(DataType.ENUM, 1)  # internal crystal
        return None

    def write(self, ln: str, index: int, value) -> int:
        """Apply a SET; returns a data-access-result code."""
        if ln == cosem.CLOCK and index == 2:
            if isinstance(value, GXDateTime):
                new = value.value.timestamp()
            else:
                new = self.spec.decode_time(bytes(value))
            if new is None:
                return ErrorCode.READ_WRITE_DENIED
            old = self.now()
            self.log_event(cosem.EVENT_CLOCK_ADJUSTED_OLD, old)
            self.clock_offset += new - old
            self.log_event(cosem.EVENT_CLOCK_ADJUSTED_NEW, new)
            return ErrorCode.OK
        if ln == cosem.DISCONNECT and index == 4:
            self.control_mode = int(value)
            return ErrorCode.OK
        return ErrorCode.READ_WRITE_DENIED

    def transfer_keys(self, parameters) -> int:
        """Security Setup method 2 (global_key_transfer): [{key_id, wrapped key}], each unwrapped
        with the master key (RFC 3394, written apart from gurux's own key wrap). All or nothing."""
        from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

        if self.faults.take("refuse_key_transfer"):
            return ErrorCode.READ_WRITE_DENIED
        new: dict[int, bytes] = {}
        try:
            for key_id, wrapped in parameters or ():
                new[int(key_id)] = aes_key_unwrap(self.spec.master_key, bytes(wrapped))
        except (InvalidUnwrap, ValueError, TypeError):
            return ErrorCode.OTHER_REASON
        size = len(self.spec.block_cipher_key)
        if not new or set(new) - {0, 2, 3} or any(len(k) != size for k in new.values()):
            return ErrorCode.OTHER_REASON
        self.pending_keys = new
        return ErrorCode.OK

    def apply_pending_keys(self) -> bool:
        if not self.pending_keys:
            return False
        keys_, self.pending_keys = self.pending_keys, {}
        spec = self.spec
        spec.block_cipher_key = keys_.get(0, spec.block_cipher_key)
        spec.authentication_key = keys_.get(2, spec.authentication_key)
        spec.master_key = keys_.get(3, spec.master_key)
        self.key_changes += 1
        return True

    def action(self, ln: str, method: int, parameters=None) -> int | None:
        """Run a method we implement; None if gurux should (association methods)."""
        if ln == cosem.SECURITY_SETUP and method == 2:
            return self.transfer_keys(parameters)
        if ln != cosem.DISCONNECT:
            return None
        if method == 1:
            self.output_state, self.control_state = False, 0
            self.log_event(cosem.EVENT_DISCONNECT)
        elif method == 2:
            self.output_state, self.control_state = True, 1
            self.log_event(cosem.EVENT_RECONNECT)
        else:
            return ErrorCode.READ_WRITE_DENIED
        return ErrorCode.OK

    def new_server(self, interface: str) -> "MeterServer":
        return MeterServer(self, interface)


def _general_ciphering(frame: bytes, title: bytes) -> bytes:
    """A WRAPPER frame whose APDU is general-ciphering with an agreed key (static unified model)
    the client never agreed on: what a suite 1/2 meter that insists on key agreement sends."""
    body = bytes((0x30,)) + (1).to_bytes(4, "big") + bytes(frame[8:]) + bytes(12)
    apdu = (bytes((0xDD, 8)) + (1).to_bytes(8, "big") + bytes((8,)) + title + bytes((8,)) + b"\0" * 8
            + bytes((0, 0, 1, 0x02, 0x01, 0x02, 0x00)) + axdr.encode_length(len(body)) + body)
    return frame[:6] + len(apdu).to_bytes(2, "big") + apdu


class MeterServer(gurux_fixes.FixedServerBase):
    """Gurux server for one meter on one link; the callbacks delegate to ``Meter``."""

    def __init__(self, meter: Meter, interface: str) -> None:
        spec = meter.spec
        itype = InterfaceType.HDLC if interface == "hdlc" else InterfaceType.WRAPPER
        logical_names = spec.referencing == "ln"
        super().__init__(itype, spec.title, spec.max_info, spec.max_window, logical_names)
        self.meter = meter
        self.generation = meter.generation
        self.client = 0
        self.last_request = time.monotonic()
        self.settings.maxServerPDUSize = spec.max_pdu
        cipher = self.settings.cipher
        cipher.blockCipherKey = spec.block_cipher_key
        cipher.authenticationKey = spec.authentication_key
        cipher.invocationCounter = meter.invocation_counter
        cipher.security = Security.NONE
        cipher.securitySuite = spec.security_suite
        self.listing = False
        shared = cosem.shared_objects()
        if logical_names:
            association = gurux_fixes.FixedAssociationLN()
            association.owner = self
            association.authenticationMechanismName.mechanismId = _AUTH[spec.auth]
        else:
            association = GXDLMSAssociationShortName()
            short_names.assign_short_names(list(shared))
            self.sn = short_names.SnServer(self, short_names.NameTable([*shared, association]))
        association.secret = spec.password.encode()
        if spec.security_suite:
            association.signing_key = keys.private_key(spec.meter_key_label, spec.security_suite)
            association.client_public_key = keys.private_key(spec.client_key_label, spec.security_suite).public_key()
            association.bad_signature = spec.bad_signature
        #: The key agreed in this association (None: the configured global key is in use).
        self.agreed_key: bytes | None = None
        self._pending_agreed_key: bytes | None = None
        self.settings.key_agreement = self._key_agreement
        self._association = association
        self.install_objects(association, shared)

    def handle(self, frame: bytes) -> bytes | None:
        """One received frame in, the reply frame out (None: nothing to send)."""
        spec = self.meter.spec
        if spec.inactivity_timeout and time.monotonic() - self.last_request > spec.inactivity_timeout:
            self.reset()
        self.last_request = time.monotonic()
        reply = GXServerReply(bytes(frame))
        self.handleRequest(reply)
        cipher = self.settings.cipher
        if cipher.invocationCounter > self.meter.invocation_counter:
            self.meter.invocation_counter = cipher.invocationCounter
        out = reply.reply
        if out and self.settings.interfaceType == InterfaceType.WRAPPER and self.meter.faults.take("general_ciphering"):
            out = _general_ciphering(bytes(out), bytes(spec.system_title or b""))
        self._apply_new_keys()
        if self._pending_agreed_key is not None:
            # As with a key transfer: the answer went out under the old key, the next APDU uses the new.
            self.agreed_key, self._pending_agreed_key = self._pending_agreed_key, None
            self.settings.cipher.blockCipherKey = self.agreed_key
            self.meter.key_agreements += 1
            self.meter.last_agreed_key = self.agreed_key
        return bytes(out) if out else None

    def _key_agreement(self, parameters):
        """Security Setup method 3 for the authenticated client (gurux_fixes.security_setup_key_agreement)."""
        spec = self.meter.spec
        if not spec.security_suite or self.client == PUBLIC_CLIENT:
            return None
        association = self._association
        result = hls.meter_key_agreement(parameters, spec.security_suite, association.signing_key,
                                         association.client_public_key, bytes(self.settings.sourceSystemTitle or b""),
                                         spec.title, spec.bad_key_agreement_signature)
        if result is None:
            return None
        answer, self._pending_agreed_key = result
        return answer

    def _awaits_key_agreement(self) -> bool:
        return self.meter.spec.require_key_agreement and self.client != PUBLIC_CLIENT and self.agreed_key is None

    def _apply_new_keys(self) -> None:
        """New global keys take effect after the reply that accepted them (ciphered with the old)."""
        if self.meter.apply_pending_keys():
            cipher = self.settings.cipher
            cipher.blockCipherKey = self.meter.spec.block_cipher_key
            cipher.authenticationKey = self.meter.spec.authentication_key
            self.settings.kek = self.meter.spec.master_key

    def reset(self, connect=False):
        """gurux zeroes the cipher's invocation counter on every AARQ/SNRM; the meter's persists."""
        super().reset(connect)
        meter = getattr(self, "meter", None)
        if meter is not None:
            self.settings.cipher.invocationCounter = meter.invocation_counter
            self._forget_agreed_key()

    def _forget_agreed_key(self) -> None:
        """An agreed key lasts one association: the next AARQ is ciphered with the global key."""
        if getattr(self, "agreed_key", None) is not None:
            self.agreed_key = None
            self.settings.cipher.blockCipherKey = self.meter.spec.block_cipher_key

    # ---- gurux callbacks ------------------------------------------------------------
    def isTarget(self, serverAddress, clientAddress):
        spec = self.meter.spec
        level = spec.clients.get(clientAddress)
        if level is None:
            return False
        if self.settings.interfaceType == InterfaceType.HDLC and serverAddress != spec.server_address:
            return False
        self.client = clientAddress
        self.settings.cipher.security = Security.NONE if level == "none" else _POLICY[spec.security_policy]
        self.settings.cipher.invocationCounter = self.meter.invocation_counter
        return True

    def handleAarqRequest(self, data, connectionInfo):
        spec = self.meter.spec
        start = len(self.replyData)
        self.settings.user_information_error = None
        self._forget_agreed_key()
        super().handleAarqRequest(data, connectionInfo)
        if (spec.deciphering_error_reply and self.settings.user_information_error is not None
                and spec.clients.get(self.client) not in (None, "none")):
            # What the AARQ's ciphered user-information failed with; a real meter says so.
            self.meter.rejected += 1
            self.replyData.size = start
            if self.settings.interfaceType == InterfaceType.HDLC:
                self.replyData.set(_LLC_REPLY)
            self.replyData.set(bytes((Command.EXCEPTION_RESPONSE, StateError.SERVICE_NOT_ALLOWED,
                                      ExceptionServiceError.DECIPHERING_ERROR)))
        elif spec.aare_max_pdu is not None:
            _announce_pdu_size(self.replyData, start, spec.aare_max_pdu)

    def onValidateAuthentication(self, authentication, password):
        meter = self.meter
        if meter.faults.take("reject_association"):
            meter.rejected += 1
            return SourceDiagnostic.NO_REASON_GIVEN
        level = meter.spec.clients.get(self.client, "none")
        if authentication != _AUTH[level]:
            meter.rejected += 1
            return SourceDiagnostic.NOT_RECOGNISED
        if level == "low" and bytes(password or b"") != meter.spec.password.encode():
            meter.rejected += 1
            return SourceDiagnostic.AUTHENTICATION_FAILURE
        return SourceDiagnostic.NONE

    def onConnected(self, connectionInfo):
        self.meter.associations += 1

    def onInvalidConnection(self, connectionInfo):
        pass

    def onDisconnected(self, connectionInfo):
        pass

    def onGetAttributeAccess(self, arg):
        target = arg.target
        ln = target.logicalName
        if self._awaits_key_agreement() and not ln.startswith("0.0.40.0."):
            return AccessMode.NO_ACCESS
        if not self.listing and not ln.startswith("0.0.40.0."):
            try:
                value = self.meter.read(ln, arg.index, arg.selector, arg.parameters)
            except SelectorError:
                value, arg.error = b"", ErrorCode.OTHER_REASON
            if value is not None:
                arg.value, arg.byteArray, arg.handled = value, True, True
        if self.client != PUBLIC_CLIENT and (
            (ln == cosem.CLOCK and arg.index == 2) or (ln == cosem.DISCONNECT and arg.index == 4)
        ):
            return AccessMode.READ_WRITE
        return AccessMode.READ

    def onGetMethodAccess(self, arg):
        ln = arg.target.logicalName
        if ln.startswith("0.0.40.0."):
            return MethodAccessMode.ACCESS
        if ln == cosem.SECURITY_SETUP and arg.index == 3:
            return MethodAccessMode.ACCESS if self.client != PUBLIC_CLIENT else MethodAccessMode.NO_ACCESS
        if self._awaits_key_agreement():
            return MethodAccessMode.NO_ACCESS
        if ln in (cosem.DISCONNECT, cosem.SECURITY_SETUP) and self.client != PUBLIC_CLIENT:
            return MethodAccessMode.ACCESS
        return MethodAccessMode.NO_ACCESS

    def onPreWrite(self, args):
        for e in args:
            # onGetAttributeAccess prepared a read answer; this is a write, undo that.
            e.byteArray = False
            e.handled = True
            e.error = self.meter.write(e.target.logicalName, e.index, e.value)

    def onPreAction(self, args):
        for e in args:
            result = self.meter.action(e.target.logicalName, e.index, e.parameters)
            if result is not None:
                e.handled, e.value, e.error = True, 0, result

    def onFindObject(self, objectType, sn, ln):
        return None

    def onPreGet(self, args):
        pass

    def onPostGet(self, args):
        pass

    def onPreRead(self, args):
        pass

    def onPostRead(self, args=None):
        pass

    def onPostWrite(self, args):
        pass

    def onPostAction(self, args):
        pass
