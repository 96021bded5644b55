"""How a client reaches a simulated meter: its MeterSettings and its ``connection`` section.

Tests, benchmarks and the e2e gateway configs all need the matching client side of a spec
(mechanism, suite, policy, keys, the client's ECDSA key); built here once so they agree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..protocol.settings import (Authentication, Interface, KeyAgreement, MeterSettings, Secret, Security,
                                 SecurityPolicy)
from . import keys
from .spec import MeterSpec

#: The system title the test clients use.
CLIENT_SYSTEM_TITLE = b"TBDLMS01"


def security_for(spec: MeterSpec, dedicated_key: bool = False) -> Security | None:
    if spec.auth in ("none", "low"):
        return None
    suite = spec.security_suite
    return Security(
        CLIENT_SYSTEM_TITLE, Secret(spec.block_cipher_key), Secret(spec.authentication_key), suite=suite,
        policy=SecurityPolicy(spec.security_policy), dedicated_key=dedicated_key,
        signing_key=Secret(keys.private_pem(spec.client_key_label, suite)) if suite else None,
        meter_public_key=keys.public_pem(spec.meter_key_label, suite) if suite else None,
        master_key=Secret(spec.master_key),
        key_agreement=KeyAgreement.GLOBAL_UNICAST if spec.require_key_agreement else KeyAgreement.NONE,
    )


def meter_settings_for(spec: MeterSpec, port: int, **over: Any) -> MeterSettings:
    kw: dict[str, Any] = dict(
        host="127.0.0.1", port=port, interface=Interface(spec.interface), client_address=spec.client_address or 16,
        logical_address=spec.logical_address, physical_address=spec.effective_physical_address,
        address_size=4 if spec.address_from_serial else spec.address_size, authentication=Authentication(spec.auth),
        timeout=2.0, retries=1, name=spec.name, max_pdu_size=spec.max_pdu,
    )
    if Authentication(spec.auth).uses_secret:
        kw["password"] = Secret(spec.password.encode())
    kw["security"] = security_for(spec, over.pop("dedicated_key", False))
    kw.update(over)
    return MeterSettings(**kw)


def connection_for(spec: MeterSpec, port: int, key_dir: Path | None = None, dedicated_key: bool = False) -> dict:
    """The ``connection`` section for ``dlms_connector.json`` (keys literal; ECDSA keys as PEM files
    written to ``key_dir``)."""
    conn: dict[str, Any] = {"host": "127.0.0.1", "port": port, "interface": spec.interface,
                            "authentication": spec.auth, "clientAddress": spec.client_address or 16}
    if Authentication(spec.auth).uses_secret:
        conn["password"] = spec.password
    if spec.auth not in ("none", "low"):
        sec: dict[str, Any] = {"systemTitle": CLIENT_SYSTEM_TITLE.hex(), "suite": spec.security_suite,
                               "policy": spec.security_policy}
        if spec.security_policy != "none" or spec.auth == "high_gmac":
            sec.update(blockCipherKey=spec.block_cipher_key.hex(), authenticationKey=spec.authentication_key.hex(),
                       masterKey=spec.master_key.hex())
        if dedicated_key:
            sec["dedicatedKey"] = True
        if spec.require_key_agreement:
            sec["keyAgreement"] = KeyAgreement.GLOBAL_UNICAST.value
        if spec.auth == "high_ecdsa" or spec.require_key_agreement:
            if key_dir is None:
                raise ValueError("HLS-ECDSA and key agreement need a key_dir for the PEM files")
            key_dir.mkdir(parents=True, exist_ok=True)
            private = key_dir / f"{spec.name}.client.pem"
            private.write_bytes(keys.private_pem(spec.client_key_label, spec.security_suite))
            private.chmod(0o600)
            public = key_dir / f"{spec.name}.meter.pem"
            public.write_bytes(keys.public_pem(spec.meter_key_label, spec.security_suite))
            sec.update(signingKey=str(private), meterPublicKey=str(public))
        conn["security"] = sec
    return conn
