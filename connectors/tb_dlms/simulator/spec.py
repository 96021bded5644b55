"""What a simulated meter looks like from the outside: addresses, authentication, timing.

A spec is plain data so it can come from Python, a JSON config or CLI flags alike. Defaults give a
realistic meter (Low password "12345678" for client 32, High-GMAC client 1 with gurux's sample
keys) so a test names only what it cares about.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, fields
from typing import TypeVar

from ..protocol import cosem_datetime
from ..protocol.mode_e import BAUD_RATES
from ..protocol.settings import hdlc_server_address, physical_address_from_serial, server_address_from_serial

T = TypeVar("T")
AUTH_LEVELS = ("none", "low", "high", "high_md5", "high_sha1", "high_gmac", "high_sha256", "high_ecdsa")
DEFAULT_AUTH_CLIENT = {"none": None, "low": 32, **{level: 1 for level in AUTH_LEVELS[2:]}}
POLICIES = ("none", "authentication", "encryption", "authentication_encryption")
#: Mechanisms that cipher by default (they need keys anyway); the others default to no ciphering.
_CIPHERED_BY_DEFAULT = ("high_gmac", "high_ecdsa")
PUBLIC_CLIENT = 16
DEFAULT_BLOCK_CIPHER_KEY = bytes(range(0x00, 0x10))
DEFAULT_AUTHENTICATION_KEY = bytes(range(0xD0, 0xE0))


def _as_bytes(value) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value)
    return bytes(value)


@dataclass
class MeterSpec:
    name: str
    interface: str = "wrapper"  # or "hdlc"
    #: TCP port; 0 picks a free one. Meters with the same ``hdlc_group`` share one HDLC port.
    port: int = 0
    hdlc_group: str | None = None
    logical_address: int = 1
    physical_address: int | None = None
    #: Derive the physical address from the serial number (settings.physical_address_from_serial, 4-byte addressing).
    address_from_serial: bool = False
    #: HDLC server address size on the wire (1, 2, 4; 0 = from the values).
    address_size: int = 0
    auth: str = "none"
    #: "ln" (logical names) or "sn" (short names: base names from the association SN's object list).
    referencing: str = "ln"
    #: Client address of the authenticated association; public client 16 is always accepted.
    client_address: int | None = None
    password: str = "12345678"
    system_title: bytes | None = None  # 8 bytes; derived from the serial when None
    block_cipher_key: bytes = DEFAULT_BLOCK_CIPHER_KEY
    authentication_key: bytes = DEFAULT_AUTHENTICATION_KEY
    #: Security suite 0, 1 (ECDSA P-256) or 2 (P-384, AES-256: keys of 32 bytes).
    security_suite: int = 0
    #: APDU protection of the authenticated client; None: ciphered for high_gmac/high_ecdsa only.
    security_policy: str | None = None
    #: Key encryption key for global_key_transfer (Security Setup method 2).
    master_key: bytes = bytes(range(0x20, 0x30))
    #: Label of the meter's ECDSA key pair (simulator.keys); None: the meter's name.
    signing_key_label: str | None = None
    #: Label of the client key pair whose signatures the meter accepts.
    client_key_label: str = "tb-dlms test client"
    #: HLS-ECDSA: sign pass 4 with a wrong value (the client must report it, not crash: gurux W2).
    bad_signature: bool = False
    #: Suites 1/2: refuse every attribute and method to the authenticated client until it has
    #: agreed the global unicast key (Security Setup method 3); the agreed key then ciphers the
    #: rest of that association (the next starts from the configured key again).
    require_key_agreement: bool = False
    #: Sign the meter's ephemeral key of the key agreement over the wrong data.
    bad_key_agreement_signature: bool = False
    #: Seconds before each reply (asyncio sleep); 0 answers at once.
    delay: float = 0.0
    profile_days: int = 3
    seed: int | None = None
    serial_number: int | None = None
    reject_range: bool = False
    #: Refuse range bounds that carry a deviation (some meters do: field notes); 0x8000 passes.
    reject_range_deviation: bool = False
    #: Profile rows after the first of a reply carry the clock as null-data (the capture period
    #: gives their time), as compact meters do: 1 byte instead of 14 per row.
    profile_null_clock: bool = False
    #: Local standard time offset (minutes east of UTC) shown in clock and profile timestamps.
    utc_offset_minutes: int = 60
    #: Clock deviation on the wire as local minus UTC (+60 for CET) instead of gurux's UTC minus local.
    deviation_local_minus_utc: bool = False
    max_info: int = 128
    max_window: int = 1
    max_pdu: int = 1024
    #: Max PDU size the AARE announces whatever the client proposed (broken meters: 0 or 1);
    #: unciphered associations only. None: gurux's negotiation.
    aare_max_pdu: int | None = None
    #: Answer an AARQ it cannot decipher (wrong keys or system title) with an exception-response
    #: "deciphering error", as many meters do, instead of a rejecting AARE.
    deciphering_error_reply: bool = False
    #: Idle seconds after which the meter forgets the association (0 = never).
    inactivity_timeout: float = 180.0
    firmware: str = "SIM-1.4.2"
    #: Logical device name (0.0.42.0.0.255), how a meter that calls in is identified; None: its name.
    logical_device_name: str | None = None
    #: Serve on a serial line (a pty) instead of TCP: meters with the same name share the line.
    serial_line: str | None = None
    #: Stable path of the line (a symlink to the pty, like /dev/serial/by-id); None: the pty's name.
    serial_path: str | None = None
    #: The line's rate: bytes take 10 bits each; ``delay`` is the meter's turnaround.
    baudrate: int = 9600
    #: IEC 62056-21 mode E: sign-on at 300 baud before HDLC (an optical port).
    mode_e: bool = False
    #: Identification sent at sign-on; None: "/SIM" + baud character + "\\2" + model.
    mode_e_identification: str | None = None
    #: Device address the meter answers to in ``/?address!`` (an empty request reaches any meter).
    mode_e_address: str = ""
    #: Ignore the sign-on entirely (a probe on the wrong meter, or a meter with its port disabled).
    mode_e_silent: bool = False

    def __post_init__(self) -> None:
        self.interface = self.interface.lower()
        self.auth = self.auth.lower()
        if self.interface not in ("wrapper", "hdlc"):
            raise ValueError(f"{self.name}: interface must be 'wrapper' or 'hdlc'")
        self.referencing = self.referencing.lower()
        if self.referencing not in ("ln", "sn"):
            raise ValueError(f"{self.name}: referencing must be 'ln' or 'sn'")
        if self.auth not in AUTH_LEVELS:
            raise ValueError(f"{self.name}: auth must be one of {AUTH_LEVELS}")
        if self.security_policy is None:
            self.security_policy = "authentication_encryption" if self.auth in _CIPHERED_BY_DEFAULT else "none"
        if self.security_policy not in POLICIES:
            raise ValueError(f"{self.name}: security_policy must be one of {POLICIES}")
        if self.security_suite not in (0, 1, 2):
            raise ValueError(f"{self.name}: security_suite must be 0, 1 or 2")
        if self.auth == "high_ecdsa" and self.security_suite == 0:
            raise ValueError(f"{self.name}: high_ecdsa needs security_suite 1 or 2")
        if self.require_key_agreement and self.security_suite == 0:
            raise ValueError(f"{self.name}: require_key_agreement needs security_suite 1 or 2")
        if self.seed is None:
            self.seed = zlib.crc32(self.name.encode())
        if self.serial_line is not None and self.interface != "hdlc":
            raise ValueError(f"{self.name}: a serial line carries HDLC (interface 'hdlc')")
        if self.mode_e_identification is None:
            char = max((c for c, rate in BAUD_RATES.items() if rate <= self.baudrate), default="0")
            self.mode_e_identification = f"/SIM{char}\\2SIMMETER-{self.firmware}"
        if self.serial_number is None:
            self.serial_number = 10_000_000 + self.seed % 89_999_999
        if self.client_address is None:
            self.client_address = DEFAULT_AUTH_CLIENT[self.auth]
        if self.logical_device_name is None:
            self.logical_device_name = self.name
        if self.system_title is None:
            self.system_title = b"SIM" + self.serial_number.to_bytes(5, "big")
        self.system_title = _as_bytes(self.system_title)
        self.block_cipher_key = _as_bytes(self.block_cipher_key)
        self.authentication_key = _as_bytes(self.authentication_key)
        if self.aare_max_pdu is not None and not 0 <= self.aare_max_pdu <= 0xFFFF:
            raise ValueError(f"{self.name}: aare_max_pdu must be 0..65535")
        if len(self.system_title) != 8:
            raise ValueError(f"{self.name}: system title must be 8 bytes")
        self.master_key = _as_bytes(self.master_key)
        if self.security_suite == 2 and len(self.block_cipher_key) == 16:
            # Suite 2 is AES-256: the sample keys doubled, so a test names only the suite.
            self.block_cipher_key *= 2
            self.authentication_key *= 2
            self.master_key *= 2
        size = 32 if self.security_suite == 2 else 16
        for key in (self.block_cipher_key, self.authentication_key, self.master_key):
            if len(key) != size:
                raise ValueError(f"{self.name}: keys must be {size} bytes for suite {self.security_suite}")

    @property
    def meter_key_label(self) -> str:
        """Label of the meter's ECDSA key pair (``signing_key_label``, the meter's name by default)."""
        return self.signing_key_label or self.name

    @property
    def server_address(self) -> int:
        """Address the client must use (HDLC destination; WRAPPER destination wPort)."""
        if self.interface == "wrapper":
            return self.logical_address
        if self.address_from_serial:
            return server_address_from_serial(self.serial, self.logical_address, 4)
        return hdlc_server_address(self.logical_address, self.physical_address, self.address_size)

    @property
    def wire_deviation(self) -> int:
        """The clock's time zone (attribute 3) as this meter signs it on the wire."""
        return cosem_datetime.wire_deviation(self.utc_offset_minutes, not self.deviation_local_minus_utc)

    def encode_time(self, ts: float) -> bytes:
        """A date-time as this meter writes it: its local time, its deviation sign."""
        return cosem_datetime.from_timestamp(ts, self.utc_offset_minutes, not self.deviation_local_minus_utc)

    def decode_time(self, raw: bytes) -> float | None:
        """A date-time a client sent (selector bounds, a clock write), read this meter's way."""
        return cosem_datetime.to_timestamp(raw, self.utc_offset_minutes, not self.deviation_local_minus_utc)

    # seed, serial_number and system_title are optional arguments that __post_init__ always fills in;
    # these read them as the definite values they then are.
    @property
    def serial(self) -> int:
        return _derived(self.serial_number, self.name, "serial number")

    @property
    def rng_seed(self) -> int:
        return _derived(self.seed, self.name, "seed")

    @property
    def title(self) -> bytes:
        return _derived(self.system_title, self.name, "system title")

    @property
    def effective_physical_address(self) -> int | None:
        if self.address_from_serial:
            return physical_address_from_serial(self.serial)
        return self.physical_address

    @property
    def clients(self) -> dict[int, str]:
        """Client address -> authentication level it must use."""
        allowed = {PUBLIC_CLIENT: "none"}
        if self.client_address is not None:
            allowed[self.client_address] = self.auth
        return allowed

    @classmethod
    def from_dict(cls, data: dict) -> "MeterSpec":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown meter settings: {sorted(unknown)}")
        return cls(**data)


def _derived(value: T | None, name: str, what: str) -> T:
    if value is None:  # pragma: no cover - MeterSpec.__post_init__ always sets it
        raise ValueError(f"{name}: no {what}")
    return value
