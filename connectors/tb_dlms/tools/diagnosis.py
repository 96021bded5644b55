"""From a session failure to what an operator should check first.

Meters say almost nothing when something is wrong: a wrong address gives silence, a wrong
password a bare reject code. The mapping below encodes what those symptoms usually mean in the
field (see docs/troubleshooting.md), naming the very settings that were used.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ..protocol import errors
from ..protocol.settings import Authentication, Interface, MeterSettings, default_port


@dataclass(frozen=True, slots=True)
class Diagnosis:
    #: Stable short name (``no_ua``, ``rejected``, ``refused`` ...) for scripts.
    kind: str
    #: What happened, in the meter's terms.
    cause: str
    #: What to check, naming the settings that were used.
    hint: str

    def as_dict(self) -> dict:
        return asdict(self)


def addresses(s: MeterSettings) -> str:
    if s.interface is Interface.HDLC:
        phys = "none" if s.physical_address is None else str(s.physical_address)
        return (f"client address {s.client_address}, server address logical {s.logical_address} "
                f"physical {phys} (wire {s.server_address}, {s.hdlc_address_size}-byte)")
    return f"client address {s.client_address}, server (logical) address {s.logical_address}"


def _credentials(s: MeterSettings) -> str:
    if s.authentication is Authentication.HIGH_GMAC:
        return ("the keys (blockCipherKey, authenticationKey) and systemTitle, and that the invocation "
                "counter object is readable by the public client")
    if s.authentication is Authentication.HIGH_ECDSA:
        return "signingKey, meterPublicKey, the security suite and systemTitle"
    if s.authentication.uses_secret:
        return f"the password (the {s.authentication.mechanism_title} secret)"
    return "whether this client needs a password (authentication 'low') or keys ('high_gmac')"


def diagnose(exc: BaseException, s: MeterSettings) -> Diagnosis:
    where = f"{s.host}:{s.port}"
    if isinstance(exc, errors.NoHdlcResponse):
        return Diagnosis("no_ua", "no answer to SNRM (no UA): the meter ignores frames not addressed to it",
                         f"wrong address: check the client and server address ({addresses(s)}); "
                         "meters on one serial server differ by physical address (often from the serial "
                         "number: serialNumber). Also check interface 'hdlc' vs 'wrapper'.")
    if isinstance(exc, errors.NoAssociationResponse):
        return Diagnosis("no_aare", "no answer to the association request (AARQ)",
                         f"usually a wrong address: check the client and server address ({addresses(s)}). "
                         "Otherwise the meter is still busy with an abandoned association: wait for its "
                         "inactivity timeout (often 180 s) and retry. Also check interface 'hdlc' vs 'wrapper'.")
    if isinstance(exc, errors.CipheringFailed):
        return Diagnosis("ciphering", 'the meter could not decipher our request ("ciphering failed")',
                         "wrong keys or system title: check blockCipherKey and authenticationKey against the "
                         f"meter's keys for client address {s.client_address}, and systemTitle (the client's "
                         "8-byte title, 16 hex digits; some meters accept only the titles they know). Address "
                         "and interface are right: the meter answered.")
    if isinstance(exc, errors.PduSizeRefused):
        said = "below 64" if exc.negotiated is None else str(exc.negotiated)
        return Diagnosis("pdu_size", f"the meter's AARE negotiated a maximum PDU size of {said} bytes",
                         "not a password or key problem: no request fits in that size (a DLMS client needs at "
                         f"least 64 bytes; we proposed {s.max_pdu_size}). The meter's association or "
                         "communication setup announces a broken size: check its configuration or firmware "
                         "with the vendor.")
    if isinstance(exc, errors.AuthenticationFailed):
        # HLS pass 3/4: the meter answered the association, so addresses and the mechanism are right.
        return Diagnosis("authentication", f"{exc.mechanism} authentication failed: check {exc.check}",
                         f"the meter accepted the association request but not our {exc.mechanism} proof (or we "
                         f"not its): the two sides do not share {exc.check} for client address "
                         f"{s.client_address}. Addresses and interface are right: the meter answered.")
    if isinstance(exc, errors.KeyAgreementFailed):
        return Diagnosis("key_agreement", _tail(exc),
                         "the association worked, the key agreement (Security Setup method 3) did not: check "
                         "meterPublicKey (the meter's signing key or certificate), that the meter holds the "
                         "public key of our signingKey, and security.suite.")
    if isinstance(exc, errors.AssociationRejected):
        mechanism = f" ({s.authentication.mechanism_title})" if s.authentication.is_high else ""
        return Diagnosis("rejected", f"the meter rejected the association{mechanism}{_reason(exc)}",
                         f"wrong password or keys: check {_credentials(s)} for client address "
                         f"{s.client_address} (authentication '{s.authentication.value}'); some meters also "
                         "reject a client address that is not allowed this authentication level.")
    if isinstance(exc, errors.ConnectError):
        text = str(exc).lower()
        if "refused" in text or "connect call failed" in text:
            return Diagnosis("refused", f"connection refused by {where}",
                             f"nothing listens there: check host and port (WRAPPER usually {default_port('wrapper')}, "
                             f"serial servers often {default_port('hdlc')} or their own), that the meter or serial "
                             "server is powered, and any firewall.")
        return Diagnosis("connect", f"no TCP connection to {where}: {_tail(exc)}",
                         f"check host, routing and firewall; on cellular links raise connectTimeoutMs "
                         f"(now {s.connect_timeout * 1000:g} ms).")
    if isinstance(exc, errors.LinkClosed):
        return Diagnosis("link_closed", f"{where} closed the connection",
                         "another client may hold the meter or serial server (many accept one connection); "
                         "or the serial server dropped an idle link.")
    if isinstance(exc, errors.ReplyTimeout):
        return Diagnosis("timeout", f"the meter stopped answering: {_tail(exc)}",
                         f"slow link (cellular, long RS-485 bus): raise timeoutMs (now {s.timeout * 1000:g} ms) "
                         f"and retries (now {s.retries}); check hdlc.maxInfoField/windowSize for serial servers.")
    if isinstance(exc, errors.ProtocolError):
        return Diagnosis("protocol", f"unexpected reply: {_tail(exc)}",
                         "check interface ('wrapper' or 'hdlc'): the wrong one gives garbage or silence. "
                         "Leftover bytes of an earlier exchange also end here; the next poll usually recovers.")
    if isinstance(exc, errors.AccessError):
        return Diagnosis("access", f"the meter refused an operation: {_tail(exc)}",
                         "the object or attribute is not readable by this client address: use a client with "
                         "more rights (e.g. 32 with authentication 'low') or remove it from the config.")
    if isinstance(exc, TimeoutError):
        return Diagnosis("deadline", "the probe did not finish in time",
                         f"the meter is very slow or silent: raise timeoutMs (now {s.timeout * 1000:g} ms) "
                         "and pollTimeoutMs.")
    return Diagnosis("error", f"{type(exc).__name__}: {exc}", "unexpected failure; run with --debug for details.")


def _tail(exc: BaseException) -> str:
    """The message without the meter label the session puts in front (we show it elsewhere)."""
    meter = getattr(exc, "meter", "")
    text = str(exc)
    return text[len(meter) + 2:] if meter and text.startswith(meter + ": ") else text


def _reason(exc: BaseException) -> str:
    found = re.search(r"\((result [^)]*)\)", str(exc))
    return f" ({found.group(1)})" if found else f": {_tail(exc)}"
