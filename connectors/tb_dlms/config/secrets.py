"""Secrets written in clear in ``dlms_connector.json``: found, refused and masked.

With ``remoteConfiguration`` on, the gateway sends the connector file to ThingsBoard as an attribute
of the gateway device (and takes new ones from it), where every tenant user can read it. A password
or key must then be a ``${ENV_VAR}`` reference, resolved on the gateway host only; a clear value is
an error naming the device and the field, and is masked in anything reported. So is a reference
with a default (``${PW:-secret}``): the default is a clear value in the file.
"""
from __future__ import annotations

import copy
from typing import Any, Iterator

from .errors import ConfigError
from . import env

MASK = "***"
#: Secret fields of a ``connection`` (or ``defaults``) section, as key paths.
SECRET_FIELDS = (("password",), ("security", "blockCipherKey"), ("security", "authenticationKey"),
                 ("security", "masterKey"), ("security", "signingKey"))
#: Fields whose value may be a file path on the gateway (not a secret) instead of the secret itself:
#: a path is kept; the PEM itself written into the file is a clear secret. (``security.keyFile`` is
#: always a path, so it is no secret field at all: the keys stay in the file on the gateway.)
PATH_FIELDS = (("security", "signingKey"),)
WHY = ("must be a ${ENV_VAR} reference with remoteConfiguration on, without a :-default (the "
       "configuration is sent to ThingsBoard, where a clear value would be readable)")


def _clear_fields(section: Any) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """(path, the dict holding the last key) of every secret field holding a clear value."""
    if not isinstance(section, dict):
        return
    for path in SECRET_FIELDS:
        holder: Any = section
        for key in path[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if not isinstance(holder, dict):
            continue
        value = holder.get(path[-1])
        ref = env.reference(value)
        if value is None or (ref is not None and not ref.default):
            continue
        if path in PATH_FIELDS and isinstance(value, str) and "-----BEGIN" not in value:
            continue  # a key file on the gateway: its path is no secret
        yield path, holder


def _sections(raw: Any) -> Iterator[tuple[str, int | None, str | None, dict[str, Any]]]:
    """(path prefix, device index, device name, section) of every place a secret can be written."""
    if not isinstance(raw, dict):
        return
    if isinstance(raw.get("defaults"), dict):
        yield "defaults.", None, None, raw["defaults"]
    devices = raw.get("devices")
    for index, device in enumerate(devices if isinstance(devices, list) else ()):
        if isinstance(device, dict) and isinstance(device.get("connection"), dict):
            name = device.get("deviceName") if isinstance(device.get("deviceName"), str) else None
            yield "connection.", index, name, device["connection"]


def clear_secrets(raw: Any) -> list[ConfigError]:
    """One error per secret written in clear (the value itself never appears)."""
    return [ConfigError(prefix + ".".join(path), WHY, index, name)
            for prefix, index, name, section in _sections(raw) for path, _ in _clear_fields(section)]


def mask_clear_secrets(raw: Any) -> Any:
    """A copy of the connector configuration with every clear secret replaced by ``***``."""
    masked = copy.deepcopy(raw)
    for _, _, _, section in _sections(masked):
        for path, holder in list(_clear_fields(section)):
            holder[path[-1]] = MASK
    return masked
