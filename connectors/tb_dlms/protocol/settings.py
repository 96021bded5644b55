"""How to reach and talk to one meter: the inputs of a session, free of any gateway notion.

``MeterSettings`` is also what the config schema makes of a device's ``connection`` section
(config/schema.py), so each connection option has one field, here. This module imports no gurux:
``import tb_dlms.config`` must not load it (tests/test_import_hygiene.py).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .obis import ObisCode


class Interface(str, enum.Enum):
    WRAPPER = "wrapper"
    HDLC = "hdlc"


class Transport(str, enum.Enum):
    """What carries the frames: TCP, or UDP datagrams (WRAPPER only, IEC 62056-47; NB-IoT meters)."""

    TCP = "tcp"
    UDP = "udp"


class Authentication(str, enum.Enum):
    """The association's authentication mechanism (Green Book mechanism id in ``mechanism_id``)."""

    NONE = "none"
    LOW = "low"
    #: Mechanism 2: manufacturer-specific (gurux and most meters: AES-128 of the challenge with the secret).
    HIGH = "high"
    HIGH_MD5 = "high_md5"
    HIGH_SHA1 = "high_sha1"
    HIGH_GMAC = "high_gmac"
    HIGH_SHA256 = "high_sha256"
    HIGH_ECDSA = "high_ecdsa"

    @property
    def mechanism_id(self) -> int:
        return _MECHANISM_IDS[self]

    @property
    def mechanism_title(self) -> str:
        """How operators and meter manuals name it ("HLS-SHA256"), for messages."""
        return _TITLES[self]

    @property
    def is_high(self) -> bool:
        """High-level security: four passes, a challenge answered by each side."""
        return self not in (Authentication.NONE, Authentication.LOW)

    @property
    def uses_secret(self) -> bool:
        """Mechanisms whose pass 3/4 proof is computed from the shared ``password`` (the HLS secret)."""
        return self in (Authentication.LOW, Authentication.HIGH, Authentication.HIGH_MD5,
                        Authentication.HIGH_SHA1, Authentication.HIGH_SHA256)


_MECHANISM_IDS = {Authentication.NONE: 0, Authentication.LOW: 1, Authentication.HIGH: 2, Authentication.HIGH_MD5: 3,
                  Authentication.HIGH_SHA1: 4, Authentication.HIGH_GMAC: 5, Authentication.HIGH_SHA256: 6,
                  Authentication.HIGH_ECDSA: 7}
_TITLES = {Authentication.NONE: "no authentication", Authentication.LOW: "Low (password)",
           Authentication.HIGH: "HLS (manufacturer-specific)", Authentication.HIGH_MD5: "HLS-MD5",
           Authentication.HIGH_SHA1: "HLS-SHA1", Authentication.HIGH_GMAC: "HLS-GMAC",
           Authentication.HIGH_SHA256: "HLS-SHA256", Authentication.HIGH_ECDSA: "HLS-ECDSA"}


class SecurityPolicy(str, enum.Enum):
    """What protects each APDU after association (the security control byte's level)."""

    NONE = "none"
    AUTHENTICATION = "authentication"
    ENCRYPTION = "encryption"
    AUTHENTICATION_ENCRYPTION = "authentication_encryption"

    @property
    def ciphered(self) -> bool:
        return self is not SecurityPolicy.NONE


class Referencing(str, enum.Enum):
    """How requests name an attribute: logical names (GET/SET/ACTION with class id and OBIS
    code) or short names (READ/WRITE with a 16-bit name from the association SN's object list),
    which older meters still in the field speak only."""

    LN = "ln"
    SN = "sn"


class KeyAgreement(str, enum.Enum):
    """``security.keyAgreement``: which key the session agrees after each association (suites 1/2).

    Named after the standard's key ids. Only the global unicast encryption key (key_id 0, the
    block cipher key every ciphered APDU uses) is agreed: the broadcast key serves pushes a
    connector does not receive, and the authentication key stays the configured one.
    """

    NONE = "none"
    GLOBAL_UNICAST = "global_unicast"


class ClockDeviation(str, enum.Enum):
    """How a meter signs the deviation of its date-times: both conventions are in the field.

    gurux and most deployed meters count UTC minus local time (CET = -60); meters following the
    newer Blue Book wording count local minus UTC (CET = +60). Read with the wrong one, a meter's
    timestamps are off by twice its offset.
    """

    UTC_MINUS_LOCAL = "utc-minus-local"
    LOCAL_MINUS_UTC = "local-minus-utc"


class Secret(bytes):
    """Bytes that never show themselves in logs, reprs or error messages."""

    def __repr__(self) -> str:  # pragma: no cover - trivial
        return "Secret(***)"

    __str__ = __repr__


#: The usual TCP port of each interface: 4059 is the IANA port of DLMS/COSEM (WRAPPER); serial
#: servers that carry raw HDLC are often set to 3333 (the field meter this was built for).
DEFAULT_PORTS = {Interface.WRAPPER: 4059, Interface.HDLC: 3333}


def default_port(interface: Interface | str | None) -> int:
    """The usual port for an interface given by name (any case); WRAPPER's for an unknown one."""
    if isinstance(interface, str) and interface.lower() == Interface.HDLC.value:
        return DEFAULT_PORTS[Interface.HDLC]
    return DEFAULT_PORTS[Interface.WRAPPER]


FRAME_COUNTER_OBIS = ObisCode(0, 0, 43, 1, 0, 255)


@dataclass(frozen=True, slots=True)
class Security:
    """Ciphering and HLS material: suite 0 (AES-GCM-128), 1 (+ECDSA P-256) or 2 (AES-GCM-256, P-384).

    Keys are 16 bytes (32 for suite 2), system titles 8. ``signing_key`` (the client's private
    key) and ``meter_public_key`` (or the meter's certificate) are PEM, for HLS-ECDSA.
    """

    client_system_title: bytes
    block_cipher_key: Secret | None
    authentication_key: Secret | None
    #: Where the meter keeps the invocation counter for our client (read before associating).
    frame_counter_obis: ObisCode = FRAME_COUNTER_OBIS
    #: Client address allowed to read it without security (the public client).
    frame_counter_client: int = 16
    suite: int = 0
    policy: SecurityPolicy = SecurityPolicy.AUTHENTICATION_ENCRYPTION
    #: general-ded ciphering: a fresh dedicated key per association, sent ciphered in the AARQ.
    dedicated_key: bool = False
    signing_key: Secret | None = None
    meter_public_key: bytes | None = None
    #: Master key (KEK) that wraps new global keys in a key change (Security Setup method 2).
    master_key: Secret | None = None
    #: Agree the global unicast key after each association (Security Setup method 3); the agreed
    #: key lives in the session's memory only, for that association.
    key_agreement: KeyAgreement = KeyAgreement.NONE
    #: Where the configuration took the global keys from ("env:BCK_VAR,AK_VAR", "file:/path"), so
    #: a key change can tell whether a restart will find the new keys there.
    key_source: str | None = field(default=None, compare=False)

    @property
    def key_size(self) -> int:
        return 32 if self.suite == 2 else 16


def hdlc_server_address(logical: int, physical: int | None, size: int = 0) -> int:
    """Server address as used on the wire: logical (upper) and optional physical (lower) part.

    With one-byte addressing only the logical part is sent; with two bytes each part gets 7 bits,
    with four bytes 14 bits each (what serial servers with several meters on a bus use).
    """
    if physical is None:
        return logical
    if size < 4 and logical < 0x80 and physical < 0x80:
        return (logical << 7) | physical
    if logical < 0x4000 and physical < 0x4000:
        return (logical << 14) | physical
    raise ValueError(f"HDLC address out of range: logical {logical}, physical {physical}")


def physical_address_from_serial(serial_number: int) -> int:
    """The HDLC physical address a meter derives from its serial number (Green Book: SN % 10000 + 1000)."""
    return serial_number % 10000 + 1000


def server_address_from_serial(serial_number: int, logical: int = 1, size: int = 4) -> int:
    """Server address with the physical part derived from the serial number."""
    return hdlc_server_address(logical, physical_address_from_serial(serial_number), size)


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """A serial port on the gateway itself (RS-485, USB adapter, optical probe).

    The key names and defaults are those of the gateway's Modbus connector (8N1 at 9600 baud).
    """

    port: str
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1
    #: IEC 62056-21 mode E sign-on (optical probes): 300 baud 7E1 first, then HDLC at the agreed rate.
    mode_e: bool = False
    #: Device address put in the sign-on request (``/?address!``); empty: any meter answers.
    device_address: str = ""
    #: Seconds to wait after the baud-rate switch before the first HDLC frame: some meters echo
    #: the acknowledgement before switching and lose a frame sent at once (field note).
    switch_delay: float = 0.3


@dataclass(frozen=True, slots=True)
class MeterSettings:
    host: str
    port: int
    interface: Interface = Interface.WRAPPER
    client_address: int = 16
    logical_address: int = 1
    physical_address: int | None = None
    #: HDLC server address size in bytes: 1, 2, 4, or 0 to choose from the values.
    address_size: int = 0
    #: The serial number the physical address was derived from, when the config gave one.
    serial_number: int | None = None
    authentication: Authentication = Authentication.NONE
    referencing: Referencing = Referencing.LN
    password: Secret | None = None
    security: Security | None = None
    #: Seconds to wait for each reply before resending the request.
    timeout: float = 5.0
    #: How many times a request is resent after a lost reply.
    retries: int = 2
    #: Seconds to wait for the TCP connection.
    connect_timeout: float = 10.0
    max_pdu_size: int = 1024
    #: Most bytes one reply (all its blocks and segments) may bring; receiving stops past it.
    max_reply_bytes: int = 65536
    hdlc_max_info: int = 128
    hdlc_window: int = 1
    #: Idle seconds after which the meter drops the association; we keep it alive before that.
    inactivity_timeout: float = 180.0
    clock_deviation: ClockDeviation = ClockDeviation.UTC_MINUS_LOCAL
    #: Seconds the one SNRM to an HDLC address that has not answered yet waits (None: timeout / 4).
    probe_timeout: float | None = None
    #: Fewest seconds between two association attempts (some meters ignore one that comes sooner).
    min_association_interval: float = 0.0
    #: Profile range bounds with the deviation "not specified" (meters that reject a deviation).
    no_range_deviation: bool = False
    #: unitOverrides: unit text by unit code, over the Blue Book table (meters reporting a wrong
    #: code), and by telemetry key; pairs, so the settings stay hashable and comparable.
    unit_overrides_by_code: tuple[tuple[int, str], ...] = ()
    unit_overrides_by_key: tuple[tuple[str, str], ...] = ()
    #: The ``quirks`` preset named (its settings are already merged into the fields here).
    quirks: str | None = None
    #: Free-text name used in logs and errors.
    name: str = ""
    #: How a polled meter is reached (UDP: one WRAPPER frame a datagram, same deadlines and resends).
    transport: Transport = Transport.TCP
    #: A meter that calls in: the listener it calls (no host or port then) and the identity it gives.
    listener: str | None = None
    identity: str | None = None
    #: Seconds an exchange waits for a meter that is not connected to call in (0: fail at once).
    call_in_wait: float = 0.0
    #: A serial port on the gateway instead of host:port (HDLC only; then ``host`` is empty).
    serial: SerialSettings | None = None

    @property
    def endpoint(self) -> str:
        """Where the meter is reached, for messages: ``host:port`` or the serial port's path."""
        return self.serial.port if self.serial is not None else f"{self.host}:{self.port}"

    def unit_override(self, code: int) -> str | None:
        """The unit text configured for a unit code, if any (unitOverrides)."""
        for overridden, text in self.unit_overrides_by_code:
            if overridden == code:
                return text
        return None

    @property
    def server_address(self) -> int:
        if self.interface is Interface.WRAPPER:
            return self.logical_address
        return hdlc_server_address(self.logical_address, self.physical_address, self.address_size)

    @property
    def hdlc_address_size(self) -> int:
        if self.address_size:
            return self.address_size
        if self.physical_address is None:
            return 1
        return 4 if self.server_address > 0x3FFF else 2

    @property
    def first_probe_timeout(self) -> float:
        """Why a quarter: UA is the shortest reply a meter gives, while ``timeout`` is sized for its
        slowest (a long GET); a dead address on a shared bus holds the bus this long per probe."""
        probe = self.timeout / 4 if self.probe_timeout is None else self.probe_timeout
        return min(probe, self.timeout)

    def worst_case_poll_s(self) -> float:
        """How long a poll may take when every request needs all its resends (the poll's deadline)."""
        exchanges = 4 + (3 if self.authentication is Authentication.HIGH_GMAC else 0)
        return self.connect_timeout + exchanges * (self.retries + 1) * self.timeout

    @property
    def deviation_utc_minus_local(self) -> bool:
        """The flag values.decode_clock/encode_datetime take for this meter's sign convention."""
        return self.clock_deviation is ClockDeviation.UTC_MINUS_LOCAL

    @property
    def inbound(self) -> bool:
        """True for a meter that calls in (``listener``): nobody dials it."""
        return self.listener is not None

    @property
    def label(self) -> str:
        return self.name or f"{self.endpoint}/{self.server_address}"


#: The logical device name object: how a meter that calls in says who it is, by default.
LOGICAL_DEVICE_NAME = "0.0.42.0.0.255"


@dataclass(frozen=True, slots=True)
class IdentifyBy:
    """How a meter that called in says who it is: an attribute read by the public client, or the
    system title of its first ciphered push (``system_title``)."""

    obis: str = LOGICAL_DEVICE_NAME
    class_id: int = 1
    attribute: int = 2
    client_address: int = 16
    server_address: int = 1
    system_title: bool = False


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    name: str
    port: int
    host: str = "0.0.0.0"
    interface: Interface = Interface.WRAPPER
    transport: Transport = Transport.TCP
    identify_by: IdentifyBy = IdentifyBy()
    #: Alliander's defaults for a cellular head-end.
    max_connections: int = 1000
    max_new_per_s: float = 30.0
    #: A connection silent this long is closed (the meter calls again when it has something).
    idle_timeout_s: float = 600.0
    #: Identification must be done within this (a meter that dials in and stays silent).
    identify_timeout_s: float = 30.0
    reply_timeout_s: float = 5.0
    retries: int = 1
    #: More connections than this from one identity within ``reconnect_window_s``: a reconnect loop.
    reconnect_limit: int = 10
    reconnect_window_s: float = 60.0
    reconnect_backoff_s: float = 60.0
