"""Failures of a meter session, by kind, so that callers can count them and diagnose them."""
from __future__ import annotations

from typing import Iterable

from .readings import AttributeRef


class DlmsError(Exception):
    """Base of every error a session raises. ``kind`` is a stable short name for counters."""

    kind = "error"

    def __init__(self, message: str, meter: str = "") -> None:
        self.meter = meter
        super().__init__(f"{meter}: {message}" if meter else message)


class ConnectError(DlmsError):
    """TCP connection could not be opened."""

    kind = "connect"


class LinkClosed(DlmsError):
    """The peer closed the connection, or it was reset."""

    kind = "link_closed"


class ReplyTimeout(DlmsError):
    """No valid reply within the deadline after all resends."""

    kind = "timeout"


class NoHdlcResponse(ReplyTimeout):
    """No UA to our SNRM: usually a wrong client or server (HDLC) address."""

    kind = "no_ua"


class NoAssociationResponse(ReplyTimeout):
    """No AARE to our AARQ: usually a wrong client address or a meter busy with another client."""

    kind = "no_aare"


class AssociationRejected(DlmsError):
    """The meter answered the AARQ with a rejection: usually a wrong password or wrong keys."""

    kind = "rejected"


class ProtocolError(DlmsError):
    """The meter answered something we could not make sense of."""

    kind = "protocol"


class AccessError(DlmsError):
    """The meter refused one operation (read, write, method) with a data-access-result."""

    kind = "access"


class InvalidValue(DlmsError):
    """A value given to write cannot be encoded as the type asked for; nothing was sent.

    The caller's mistake, not the meter's: the association is kept and no meter error is counted.
    """

    kind = "invalid_value"


class BadReply(ProtocolError):
    """A reply refused for what it holds; ``refs`` are the attributes it answered (when known)."""

    def __init__(self, message: str, meter: str = "", refs: tuple[AttributeRef, ...] = (),
                 index: int | None = None) -> None:
        super().__init__(message, meter)
        self.detail = message
        self.refs = tuple(refs)
        #: Position of the offending value among the attributes of one request, when known.
        self.index = index

    def naming(self, refs: Iterable[AttributeRef]) -> BadReply:
        """The same error, naming the attribute(s) of the request it answered."""
        refs = tuple(refs)
        named = (refs[self.index],) if self.index is not None and self.index < len(refs) else refs
        what = ", ".join(str(r) for r in named)
        return type(self)(f"reply to {what}: {self.detail}", self.meter, named)


class MalformedReply(BadReply):
    """The reply does not decode as A-XDR (a length or count claims more than it holds)."""

    kind = "malformed"


class ReplyTooLarge(BadReply):
    """The reply passed ``maxReplyBytes`` while it was being received; the rest was not read."""

    kind = "reply_too_large"


class PduSizeRefused(AssociationRejected):
    """The AARE negotiated a maximum PDU size no request fits in (0 and 1 seen in the field).

    gurux refuses such an AARE like a rejection; the credentials were fine, the meter's
    negotiated size is what to look at.
    """

    kind = "pdu_size"

    def __init__(self, message: str, meter: str = "", negotiated: int | None = None) -> None:
        super().__init__(message, meter)
        self.negotiated = negotiated


class CipheringFailed(AssociationRejected):
    """The meter answered an exception-response "deciphering error" (gurux: "Ciphering failed").

    It could not open what we ciphered: the keys or the system title differ from the meter's.
    """

    kind = "ciphering"


class AuthenticationFailed(AssociationRejected):
    """HLS pass 3 or 4 failed: the meter did not accept our proof, or its proof is not right.

    Both mean the two sides do not share the secret (or keys); ``mechanism`` names the HLS
    mechanism ("HLS-SHA256") so the operator knows which secret to check.
    """

    kind = "authentication"

    def __init__(self, message: str, meter: str = "", mechanism: str = "", check: str = "the secret") -> None:
        super().__init__(message, meter)
        self.mechanism = mechanism
        self.check = check


class KeyAgreementFailed(AssociationRejected):
    """Security Setup key_agreement (method 3) was refused, or the meter's answer is not signed
    with the key in ``security.meterPublicKey``: no key to cipher with, so no association."""

    kind = "key_agreement"


class KeysChangedButUnusable(DlmsError):
    """The meter took new global keys but no association with them worked: neither key set is
    known to work, so this is reported loudly rather than retried with the old keys."""

    kind = "key_change"
