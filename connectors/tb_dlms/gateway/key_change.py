"""The ``changeKeys`` device RPC: new global keys for a meter, read on the gateway host.

Keys never travel through ThingsBoard: the request names where the new keys are on the gateway,
``{"keyFile": "/etc/tb-dlms/keys/meter.json"}`` or ``{"blockCipherKey": "${VAR}",
"authenticationKey": "${VAR}"}`` (environment variables of the gateway process), plus an optional
``securitySetup`` OBIS code (default 0.0.43.0.0.255). A literal key in the request is refused
without being echoed. The reply says whether the device's configuration takes its keys from the
same place, the only way a restart finds the new keys.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import env
from ..config.schema import read_key_file
from ..protocol.errors import KeysChangedButUnusable
from ..protocol.obis import ObisCode, ObisError
from ..protocol.settings import Secret
from .device import DLMSDevice
from .rpc_work import DeviceWork, RpcError

#: A key change is a transfer plus a new association (and the public client's, for the counter).
CHANGE_KEYS_TIMEOUT_S = 30.0
_NOT_IN_CLEAR = ("keys never travel through ThingsBoard: name a key file on the gateway (params.keyFile) or "
                 "environment variables (params.blockCipherKey and params.authenticationKey as \"${VAR}\")")


def _source(params: dict[str, Any]) -> tuple[str, Any]:
    """("file", path) or ("env", (bck_var, ak_var)), checked before anything is sent."""
    unknown = set(params) - {"keyFile", "blockCipherKey", "authenticationKey", "securitySetup"}
    if unknown:
        raise RpcError(f"changeKeys: unknown params {sorted(unknown)}; {_NOT_IN_CLEAR}")
    path = params.get("keyFile")
    values = [params.get("blockCipherKey"), params.get("authenticationKey")]
    if path is not None:
        if any(v is not None for v in values):
            raise RpcError("changeKeys: give params.keyFile or the two key variables, not both")
        if not isinstance(path, str) or not path.strip():
            raise RpcError("changeKeys: params.keyFile must be a path on the gateway")
        return "file", path.strip()
    refs = [env.reference(v) for v in values]
    # A :-default would be a key in clear in the request: refused like a literal.
    if refs[0] is None or refs[1] is None or refs[0].default is not None or refs[1].default is not None:
        raise RpcError(f"changeKeys: {_NOT_IN_CLEAR}")
    return "env", (refs[0].name, refs[1].name)


def _load(kind: str, where: Any, size: int) -> tuple[Secret, Secret]:
    if kind == "file":
        try:
            return read_key_file(where, size)
        except ValueError as exc:
            raise RpcError(f"changeKeys: {exc}") from None
    keys = []
    for var, name in zip(where, ("blockCipherKey", "authenticationKey"), strict=True):
        value = os.environ.get(var, "")
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = b""
        if len(raw) != size:
            raise RpcError(f"changeKeys: environment variable {var} ({name}) must hold {size} bytes hex "
                           f"on the gateway ({'not set' if not value else 'it does not'})")
        keys.append(Secret(raw))
    return keys[0], keys[1]


def _source_text(kind: str, where: Any) -> str:
    return f"file:{Path(where).expanduser().resolve()}" if kind == "file" else f"env:{where[0]},{where[1]}"


def change_keys_command(params: dict[str, Any]) -> DeviceWork:
    kind, where = _source(params)
    setup = None  # the session's default, the management association's Security Setup
    if params.get("securitySetup") is not None:
        try:
            setup = ObisCode.parse(params["securitySetup"])
        except ObisError as exc:
            raise RpcError(f"changeKeys: params.securitySetup is not an OBIS code: {exc}") from None

    async def run(device: DLMSDevice) -> dict[str, Any]:
        security = device.config.connection.security
        if security is None or not security.policy.ciphered or security.master_key is None:
            raise RpcError(f"{device.name}: changeKeys needs a ciphered connection with security.masterKey "
                           "(the key encryption key) in the device's configuration")
        bck, ak = _load(kind, where, security.key_size)
        source = _source_text(kind, where)
        try:
            await device.shared_session().change_keys(bck, ak, setup)
        except KeysChangedButUnusable:
            _use_keys(device, bck, ak)  # the meter has them: the old ones are gone
            raise
        _use_keys(device, bck, ak)
        same = security.key_source == source
        reply: dict[str, Any] = {"success": True, "device": device.name, "keysFrom": source,
                                 "configTakesKeysFromHere": same}
        if not same:
            reply["warning"] = ("the device's configuration takes its keys from "
                                f"{security.key_source or 'literal values'}: point it at {source} before the "
                                "gateway restarts, or the meter will refuse the old keys")
        return reply

    return DeviceWork(run, CHANGE_KEYS_TIMEOUT_S)


def _use_keys(device: DLMSDevice, bck: Secret, ak: Secret) -> None:
    """Later sessions of this device (after a failure, a reconnect) associate with the new keys."""
    config = device.config
    conn = config.connection
    assert conn.security is not None  # checked by run() before the transfer
    security = replace(conn.security, block_cipher_key=bck, authentication_key=ak)
    device.config = replace(config, connection=replace(conn, security=security))
