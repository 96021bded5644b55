"""The reference pages cover every config key the schema accepts and every RPC method the connector answers,
and every relative link in the shipped docs leads to a file (and heading) that exists.

The references live in docs/configuration.md and docs/rpc.md (moved out of README.md, issue 12).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tb_dlms.config import inbound, meter_data, quirks, schema
from tb_dlms.gateway import commissioning, rpc

REPO = Path(__file__).resolve().parents[2]
CONFIGURATION = REPO / "docs" / "configuration.md"
RPC = REPO / "docs" / "rpc.md"
SHIPPED_DOCS = [REPO / "README.md", REPO / "QUICKSTART.md", REPO / "ARCHITECTURE.md", REPO / "CONTRIBUTING.md",
                REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
SCHEMA_KEYS = ["TOP_KEYS", "DEVICE_KEYS", "CONNECTION_KEYS", "SERVER_ADDRESS_KEYS", "SECURITY_KEYS", "HDLC_KEYS",
               "SERIAL_KEYS",
               "POINT_KEYS", "REPORT_KEYS", "BREAKER_KEYS"]
METER_DATA_KEYS = ["PROFILE_KEYS", "EVENT_LOG_KEYS", "CLOCK_KEYS", "ATTRIBUTE_UPDATE_KEYS", "DEVICE_SECTIONS"]
#: connection.quirks: the switches a preset is made of (config/quirks.py); the preset names are checked below.
QUIRK_KEYS = ["SWITCH_KEYS"]
INBOUND_KEYS = ["LISTENER_KEYS", "IDENTIFY_KEYS", "RECONNECT_KEYS", "PUSH_KEYS", "PUSH_OBJECT_KEYS"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def schema_keys() -> set[str]:
    # getattr without a default: a renamed key list fails here instead of silently documenting nothing.
    return ({k for n in SCHEMA_KEYS for k in getattr(schema, n)}
            | {k for n in METER_DATA_KEYS for k in getattr(meter_data, n)}
            | {k for n in QUIRK_KEYS for k in getattr(quirks, n)}
            | {k for n in INBOUND_KEYS for k in getattr(inbound, n)})


def in_code(text: str, word: str) -> bool:
    return re.search(rf"`[^`\n]*\b{re.escape(word)}\b[^`\n]*`", text) is not None


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens (code fences skipped)."""
    out, fence = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


@pytest.mark.parametrize("key", sorted(schema_keys()))
def test_configuration_doc_covers_key(key):
    text = CONFIGURATION.read_text(encoding="utf-8")
    assert in_code(text, key), f"docs/configuration.md does not document `{key}`"


@pytest.mark.parametrize("name", sorted(quirks.PRESETS))
def test_configuration_doc_covers_quirks_preset(name):
    text = CONFIGURATION.read_text(encoding="utf-8")
    row = re.search(rf"^\| `{re.escape(name)}` \|", text, re.M)
    assert row, f"docs/configuration.md has no row for the quirks preset `{name}`"


def test_rpc_doc_covers_every_method():
    text = RPC.read_text(encoding="utf-8")
    missing = [m for m in rpc.DEVICE_METHODS if not in_code(text, m)]
    connector_methods = [*rpc.CONNECTOR_METHODS, *commissioning.METHODS]
    missing += [f"dlms_{m}" for m in connector_methods if not in_code(text, f"dlms_{m}")]
    assert rpc.DEVICE_METHODS and rpc.CONNECTOR_METHODS
    assert not missing, f"docs/rpc.md does not document {missing}"


@pytest.mark.parametrize("doc", SHIPPED_DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc):
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(target)
    assert not broken, f"{doc.relative_to(REPO)}: broken links {broken}"


def test_readme_keeps_the_two_commands_and_links_the_references():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "./start_gateway.sh --demo" in text
    assert "./run_tests.sh" in text and ".ci/run" in text
    for page in ("docs/configuration.md", "docs/rpc.md", "docs/troubleshooting.md", "docs/operations.md"):
        assert f"]({page})" in text, page
