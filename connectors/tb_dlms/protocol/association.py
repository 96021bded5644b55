"""How a session associates with a meter, and lets go of it again.

Why a module of its own: building gurux's client from the settings (LN or SN, every
authentication mechanism, ciphering policy and suite, HDLC parameters), reading the frame counter
first when ciphered, SNRM/UA, AARQ/AARE with its named refusals (PDU size, rejected), HLS passes 3
and 4 (HLS-ECDSA by security_fixes), key agreement, and release/teardown is the longest and most
meter-specific part of a session, and none of it concerns what is read once associated.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from gurux_dlms import GXDLMSClient, GXDLMSException, GXReplyData
from gurux_dlms.GXDLMSConfirmedServiceError import GXDLMSConfirmedServiceError
from gurux_dlms.ConnectionState import ConnectionState
from gurux_dlms.enums import Authentication as GxAuthentication
from gurux_dlms.enums import Conformance, DataType, InterfaceType, Security as GxSecurity
from gurux_dlms.enums import Service
from gurux_dlms.ServiceError import ServiceError
from gurux_dlms.secure import GXDLMSSecureClient

from . import gurux_compat, key_agreement, key_transfer, security_fixes
from .errors import (
    AssociationRejected,
    AuthenticationFailed,
    DlmsError,
    KeyAgreementFailed,
    LinkClosed,
    NoAssociationResponse,
    NoHdlcResponse,
    PduSizeRefused,
)
from .exchange import _AARE, _DISC, _METHOD, _RLRE, _UA
from .link import LinkProvider
from .reads import Reads
from .readings import AttributeRef
from .settings import Authentication, Interface, KeyAgreement, Referencing, Security, SecurityPolicy
from .values import plain

log = logging.getLogger("tb_dlms.protocol.session")  # the session's logger, as before the split

_GX_AUTH = {auth: GxAuthentication(auth.mechanism_id) for auth in Authentication}
_GX_POLICY = {
    SecurityPolicy.NONE: GxSecurity.NONE,
    SecurityPolicy.AUTHENTICATION: GxSecurity.AUTHENTICATION,
    SecurityPolicy.ENCRYPTION: GxSecurity.ENCRYPTION,
    SecurityPolicy.AUTHENTICATION_ENCRYPTION: GxSecurity.AUTHENTICATION_ENCRYPTION,
}
_GX_INTERFACE = {Interface.WRAPPER: InterfaceType.WRAPPER, Interface.HDLC: InterfaceType.HDLC}
#: Method 1 (reply_to_HLS_authentication) of the current association carries HLS pass 3.
_CURRENT_ASSOCIATION = AttributeRef.of("0.0.40.0.0.255", 15, 1)
#: Seconds we wait for the meter to acknowledge a release (RLRQ) or disconnect (DISC).
RELEASE_TIMEOUT = 1.0


class Association(Reads):
    """The association of one session: made on first use, rebuilt after any failure."""

    _links: LinkProvider
    _associated: bool
    #: When the last association attempt started (monotonic), for minAssociationIntervalS.
    _last_association_attempt: float | None
    _ecdsa: tuple[Any, Any] | None
    multiple_references: bool

    @property
    def associated(self) -> bool:
        return self._associated and self._link is not None and self._link.is_open

    async def _ensure_associated(self) -> None:
        if self.associated:
            return
        await self._teardown(release=False)
        await self._respect_association_interval()
        s = self.settings
        counter = None
        # As _new_client: no ciphering without authentication (a push-only meter's keys are for its pushes).
        ciphered = s.security is not None and s.security.policy.ciphered and s.authentication is not Authentication.NONE
        if ciphered or s.authentication is Authentication.HIGH_GMAC:
            counter = await self._read_frame_counter()
        self._client = self._new_client(s.client_address, s.authentication, s.password)
        if counter is not None:
            self._client.ciphering.invocationCounter = counter + 1
        await self._associate(self._client)
        if s.security is not None and s.security.key_agreement is not KeyAgreement.NONE:
            await self._agree_key(self._client, s.security)
        self._associated = True
        self._scalers.clear()
        self._profiles.clear()
        self._short_names = None  # a meter may renumber after a firmware update: re-read per association
        self.stats.associations += 1
        self.multiple_references = bool(self._client.negotiatedConformance & Conformance.MULTIPLE_REFERENCES)
        log.debug("%s: associated (conformance %#x)", s.label, self._client.negotiatedConformance)

    async def _respect_association_interval(self) -> None:
        """Some meters ignore an association attempt that comes too soon after the previous one
        (Microstar: 10-15 s, field notes): wait out ``min_association_interval`` first."""
        interval = self.settings.min_association_interval
        last = self._last_association_attempt
        if interval > 0 and last is not None:
            wait = last + interval - time.monotonic()
            if wait > 0:
                log.debug("%s: waiting %.1f s before associating again", self.settings.label, wait)
                await asyncio.sleep(wait)
        self._last_association_attempt = time.monotonic()

    def _new_client(self, client_address: int, auth: Authentication, password: bytes | None) -> GXDLMSClient:
        s = self.settings
        ln = s.referencing is Referencing.LN
        if not ln and auth.is_high:
            # The schema refuses this pair (config.schema); settings built in code get the same reason.
            raise ValueError(f"{s.label}: short-name referencing with {auth.mechanism_title} is not supported: "
                             "HLS pass 3 by short name is not implemented")
        sec = s.security if auth is not Authentication.NONE else None
        if auth in (Authentication.HIGH_GMAC, Authentication.HIGH_SHA256, Authentication.HIGH_ECDSA) and sec is None:
            raise ValueError(f"{s.label}: {auth.mechanism_title} needs security settings (systemTitle, keys)")
        if sec is None and auth.is_high:
            # gurux's pass 3 reads the invocation counter of a cipher only its secure client has.
            sec = Security(b"\0" * 8, None, None, policy=SecurityPolicy.NONE)
        if sec is not None:
            client = GXDLMSSecureClient(ln, client_address, s.server_address, _GX_AUTH[auth],
                                        bytes(password) if password else None, _GX_INTERFACE[s.interface])
            c = client.ciphering
            c.security = _GX_POLICY[sec.policy]
            c.securitySuite = sec.suite
            c.systemTitle = bytearray(sec.client_system_title)
            if sec.block_cipher_key is not None:
                c.blockCipherKey = bytearray(sec.block_cipher_key)
            if sec.authentication_key is not None:
                c.authenticationKey = bytearray(sec.authentication_key)
            if sec.dedicated_key and sec.policy.ciphered:
                # A fresh key per association (general-ded ciphering), sent inside the ciphered AARQ.
                c.dedicatedKey = bytearray(os.urandom(sec.key_size))
            elif sec.suite == 0:
                # Service-specific glo-ciphering (glo-get-request ...) is what suite-0 meters in the
                # field speak; general-glo-ciphering is newer and not universally implemented.
                client.proposedConformance &= ~Conformance.GENERAL_PROTECTION
        else:
            client = GXDLMSClient(ln, client_address, s.server_address, _GX_AUTH[auth],
                                  bytes(password) if password else None, _GX_INTERFACE[s.interface])
        client.maxReceivePDUSize = s.max_pdu_size
        if s.interface is Interface.HDLC:
            client.setServerAddressSize(s.hdlc_address_size)
            hdlc = client.hdlcSettings
            hdlc.maxInfoTX = hdlc.maxInfoRX = s.hdlc_max_info
            hdlc.windowSizeTX = hdlc.windowSizeRX = s.hdlc_window
        return client

    async def _associate(self, client: GXDLMSClient) -> None:
        await self._open_link()
        if self.settings.interface is Interface.HDLC:
            client.parseUAResponse((await self._snrm(client)).data)
        reply = await self._exchange(client, client.aarqRequest(), _AARE, NoAssociationResponse,
                                     "no AARE to AARQ (check client address; meter may be busy)")
        try:
            client.parseAareResponse(reply.data)
        except GXDLMSException as exc:
            if _is_pdu_size_error(exc.__context__):
                negotiated = _negotiated_pdu_size(bytes(reply.data))
                said = "below 64" if negotiated is None else str(negotiated)
                raise PduSizeRefused(
                    f"the meter's AARE negotiated a maximum PDU size of {said} bytes (we proposed "
                    f"{self.settings.max_pdu_size}); no request fits in it", self.settings.label, negotiated,
                ) from exc
            raise AssociationRejected(
                f"association rejected by meter ({_reject_reason(exc)}): check password or keys",
                self.settings.label,
            ) from exc
        if client.getIsAuthenticationRequired():
            await self._hls_passes(client)

    async def _hls_passes(self, client: GXDLMSClient) -> None:
        """HLS passes 3 and 4: our f(StoC) to the meter, its f(CtoS) checked.

        gurux computes and checks them, except for HLS-ECDSA (security_fixes W1, W2). Any
        failure is an AuthenticationFailed naming the mechanism: the meter either answers pass 3
        with nothing or with a proof that does not match, both "not the same secret".
        """
        s = self.settings
        auth = s.authentication
        check = _WHAT_TO_CHECK.get(auth, "the secret")
        failed = f"{auth.mechanism_title} authentication failed: check {check}"
        # The method reply is matched on its invoke id, like any other (the AARQ carries none).
        self._next_invoke_id(client)
        if auth is Authentication.HIGH_ECDSA:
            signing, meter_key = self._ecdsa_keys()
            st = client.settings
            proof = security_fixes.ecdsa_proof(signing, bytes(st.cipher.systemTitle),
                                               bytes(st.sourceSystemTitle or b""), bytes(st.stoCChallenge),
                                               bytes(st.ctoSChallenge))
            frames = client.method(self._object(_CURRENT_ASSOCIATION), 1, proof, DataType.OCTET_STRING)
            reply = await self._exchange(client, frames, _METHOD)
            answer = reply.value
            if not isinstance(answer, (bytes, bytearray)) or not security_fixes.verify_meter_proof(
                    meter_key, bytes(answer), bytes(st.cipher.systemTitle), bytes(st.sourceSystemTitle or b""),
                    bytes(st.stoCChallenge), bytes(st.ctoSChallenge)):
                raise AuthenticationFailed(failed, s.label, auth.mechanism_title, check)
            st.connected |= ConnectionState.DLMS
            return
        reply = await self._exchange(client, client.getApplicationAssociationRequest(), _METHOD)
        try:
            client.parseApplicationAssociationResponse(reply.data)
        except Exception as exc:  # noqa: BLE001 - gurux raises a bare Exception for "do not match"
            raise AuthenticationFailed(failed, s.label, auth.mechanism_title, check) from exc

    async def _agree_key(self, client: GXDLMSClient, sec: Security) -> None:
        """Security Setup method 3 (protocol/key_agreement.py): agree a fresh global unicast key for
        this association and cipher with it from the meter's answer on. Held by gurux's cipher
        object only, for this association: never in settings, logs or replies."""
        s = self.settings
        signing, meter_key = self._ecdsa_keys()
        meter_title = bytes(client.settings.sourceSystemTitle or b"")
        if len(meter_title) != 8:
            raise AssociationRejected("key agreement needs the meter's system title, and its AARE carried none",
                                      s.label)
        agreement = key_agreement.initiate(sec.suite, sec.key_agreement)
        self._next_invoke_id(client)
        ref = AttributeRef(key_transfer.DEFAULT_SECURITY_SETUP, key_transfer.SECURITY_SETUP_CLASS,
                           key_agreement.KEY_AGREEMENT)
        frames = client.method(self._object(ref), ref.attribute, agreement.request(signing), DataType.ARRAY)
        reply = await self._exchange(client, frames, _METHOD)
        if reply.error:
            raise KeyAgreementFailed(f"the meter refused key agreement ({gurux_compat.AccessResult(reply.error).name})",
                                     s.label)
        try:
            key = agreement.complete(reply.value, meter_key, sec.client_system_title, meter_title)
        except key_agreement.KeyAgreementError as exc:
            raise KeyAgreementFailed(f"key agreement failed: {exc} (check security.meterPublicKey)", s.label) from None
        client.ciphering.blockCipherKey = bytearray(key)

    def _ecdsa_keys(self) -> tuple[Any, Any]:
        """The client's signing key and the meter's public key, parsed once per session."""
        if self._ecdsa is None:
            sec = self.settings.security
            if sec is None or sec.signing_key is None or sec.meter_public_key is None:
                raise AssociationRejected("HLS-ECDSA and key agreement need security.signingKey and "
                                          "security.meterPublicKey",
                                          self.settings.label)
            try:
                self._ecdsa = (security_fixes.load_private_key(sec.signing_key, sec.suite),
                               security_fixes.load_public_key(sec.meter_public_key, sec.suite))
            except ValueError as exc:
                raise AssociationRejected(f"HLS-ECDSA keys: {exc}", self.settings.label) from None
        return self._ecdsa

    async def _snrm(self, client: GXDLMSClient) -> GXReplyData:
        """SNRM/UA; to an address that has not answered on its link: once, with the short probe timeout."""
        s, what = self.settings, "no UA to SNRM (check client and server HDLC address)"
        link, box = self._link, self._box
        if link is None or box is None:
            raise LinkClosed("not connected", s.label)
        if not link.first_contact(box.address):
            return await self._exchange(client, [client.snrmRequest()], _UA, NoHdlcResponse, what)
        reply = GXReplyData()
        await self._round_trip(client, client.snrmRequest(), reply, _UA, NoHdlcResponse,
                               what + "; first probe of this address, probeTimeoutMs", 0, s.first_probe_timeout)
        return reply

    async def _read_frame_counter(self) -> int:
        """Real meters reject a ciphered AARQ whose invocation counter is not above their own."""
        s = self.settings
        assert s.security is not None
        public = self._new_client(s.security.frame_counter_client, Authentication.NONE, None)
        await self._associate(public)
        ref = AttributeRef(s.security.frame_counter_obis, 1, 2)
        value = (await self._get_raw([ref], public))[0]
        await self._release(public)
        if isinstance(value, gurux_compat.AccessResult) or not isinstance(value, int):
            raise AssociationRejected(f"cannot read invocation counter {ref}: {plain(value)}", s.label)
        return int(value)

    async def _release(self, client: GXDLMSClient) -> None:
        """Release politely, bounded: a meter that ignores it times out its association anyway."""
        try:
            async with asyncio.timeout(min(self.settings.timeout, RELEASE_TIMEOUT) * 2):
                await self._send_release(client)
        except TimeoutError:
            log.debug("%s: release not acknowledged in time", self.settings.label)

    async def _send_release(self, client: GXDLMSClient) -> None:
        try:
            frames = client.releaseRequest()
            if frames:
                await self._exchange(client, frames, _RLRE, retries=0)
            if self.settings.interface is Interface.HDLC:
                await self._exchange(client, [client.disconnectRequest()], _DISC, retries=0)
        except (DlmsError, GXDLMSException, ValueError) as exc:
            log.debug("%s: release not acknowledged: %s", self.settings.label, exc)

    async def _open_link(self) -> None:
        if self._link is None:
            self._link, self._box = self._links.acquire(self.settings)
        if not self._link.is_open:
            await self._link.open()

    async def _teardown(self, release: bool, close_link: bool = False) -> None:
        was = self._associated
        self._associated = False
        if release and was and self._client is not None and self._link is not None and self._link.is_open:
            await self._release(self._client)
        link, self._link = self._link, None
        self._box = None
        if link is not None:
            self.stats.discarded_bytes = link.discarded_bytes
            try:
                if close_link and link.users == 1:
                    await link.close()
                await self._links.release(link, self.settings.server_address)
            except Exception:  # noqa: BLE001 - teardown never raises
                log.debug("%s: link release failed", self.settings.label, exc_info=True)


#: What a failed HLS pass 3/4 points at, per mechanism (the diagnosis repeats it).
_WHAT_TO_CHECK = {
    Authentication.HIGH_GMAC: "the keys (authenticationKey, blockCipherKey) and systemTitle",
    Authentication.HIGH_ECDSA: "signingKey, meterPublicKey and systemTitle",
    Authentication.HIGH_SHA256: "the secret (password) and systemTitle",
}


def _is_pdu_size_error(exc: BaseException | None) -> bool:
    """gurux refuses an AARE whose negotiated PDU is < 64 with this error, then re-raises it as a
    bare "permanently rejected" (the original survives only as the context)."""
    return (isinstance(exc, GXDLMSConfirmedServiceError)
            and getattr(exc, "serviceError", None) == ServiceError.SERVICE
            and getattr(exc, "serviceErrorValue", None) == Service.PDU_SIZE)


def _negotiated_pdu_size(aare: bytes) -> int | None:
    """The negotiated max PDU of a plain InitiateResponse (DLMS version 6, 4-byte conformance
    block, then the size); None when ciphered or not found."""
    at = aare.find(b"\x06\x5f\x1f\x04\x00")
    if at < 0 or at + 10 > len(aare):
        return None
    return int.from_bytes(aare[at + 8:at + 10], "big")


def _reject_reason(exc: GXDLMSException) -> str:
    diag = getattr(exc, "diagnostic", None)
    result = getattr(exc, "result", None)
    return f"result {result}, diagnostic {diag}" if diag is not None or result is not None else str(exc)
