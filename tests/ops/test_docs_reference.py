"""The reference docs cover every config key the schema accepts and every RPC method the connector answers."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tb_dlms.config import schema
from tb_dlms.gateway import commissioning, rpc

REPO = Path(__file__).resolve().parents[2]


def schema_keys() -> set[str]:
    names = ["TOP_KEYS", "DEVICE_KEYS", "CONNECTION_KEYS", "SERVER_ADDRESS_KEYS", "SECURITY_KEYS", "HDLC_KEYS", "SERIAL_KEYS",
             "POINT_KEYS", "REPORT_KEYS", "BREAKER_KEYS"]
    keys = {k for n in names for k in getattr(schema, n, ())}
    try:
        from tb_dlms.config import meter_data
    except ImportError:
        return keys
    for n in ("PROFILE_KEYS", "EVENT_LOG_KEYS", "CLOCK_KEYS", "ATTRIBUTE_UPDATE_KEYS", "DEVICE_SECTIONS"):
        keys |= set(getattr(meter_data, n, ()))
    return keys


def in_code(text: str, word: str) -> bool:
    return re.search(rf"`[^`\n]*\b{re.escape(word)}\b[^`\n]*`", text) is not None


@pytest.mark.parametrize("key", sorted(schema_keys()))
def test_configuration_doc_covers_key(key):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert in_code(text, key), f"README.md's configuration reference does not document `{key}`"


def test_rpc_doc_covers_every_method():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [m for m in rpc.DEVICE_METHODS if not in_code(text, m)]
    connector_methods = [*rpc.CONNECTOR_METHODS, *commissioning.METHODS]
    missing += [f"dlms_{m}" for m in connector_methods if not in_code(text, f"dlms_{m}")]
    assert not missing, missing
