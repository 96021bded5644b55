"""``gateway/`` maps readings to ThingsBoard; COSEM (class ids, attribute and method indexes, the
layout of a date-time) is known in ``protocol/`` only.

Read from the source (AST), so the check is the same whatever the modules import: a class id or
an index written as a number next to ``AttributeRef``, ``classId``, ``.class_id``/``.attribute``,
a constant named after a class or a method, a table of numeric codes, or byte offsets (``raw[9:11]``, ``struct``, byte
literals) fail here, with the line. Protocol constants by name (``REGISTER_CLASS``) are fine:
that is where they belong. The allow-list below says why each remaining exception is not COSEM.
"""
from __future__ import annotations

import ast
from pathlib import Path

GATEWAY = Path(__file__).resolve().parents[2] / "connectors" / "tb_dlms" / "gateway"

#: Keys of an RPC request or config entry that name a COSEM class or index.
INDEX_KEYS = {"classId", "attribute", "method"}
#: Attributes of an ``AttributeRef`` (and of what holds one) that are class ids or indexes.
INDEX_FIELDS = {"class_id", "attribute", "method_index"}
#: Words in a module constant's name that say it is a class id or a method/attribute index.
INDEX_NAMES = ("CLASS", "METHOD", "ATTRIBUTE")

#: (module, source of the slice) -> why it is not a COSEM byte offset.
ALLOWED_SLICES = {
    ("connector.py", "json.dumps(content, default=str)[:500]"): "log line: the start of an RPC reply",
    ("rpc.py", "raw[:40]"): "error text: the start of a params string that is not JSON",
    ("rpc.py", "method[len(prefix):]"): "RPC name without the connector's prefix",
    ("storage_watch.py", "' '.join(text.split())[:300]"): "log line: the start of the gateway's message",
    ("commands.py", "entries[:READ_PROFILE_MAX_ROWS]"): "readProfile reply: at most that many rows",
    ("profiles.py", "fresh[i:i + BATCH_ROWS]"): "rows handed over per batch",
}


def _int(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _ints(node: ast.AST) -> bool:
    """An int literal, or a tuple/list/set of them."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_int(e) for e in node.elts)
    return _int(node)


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else ""
        return f"{owner}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else ""


def cosem_facts(source: str, module: str) -> list[str]:
    """Every place in ``source`` that spells out a COSEM number, as ``module:line: what``."""
    found: list[str] = []

    def hit(node: ast.AST, what: str) -> None:
        found.append(f"{module}:{getattr(node, 'lineno', '?')}: {what}: {ast.unparse(node)[:90]}")

    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            if "struct" in names:
                hit(node, "byte layouts are protocol/ codecs")
        elif isinstance(node, ast.Constant) and isinstance(node.value, bytes) and node.value:
            hit(node, "bytes literal (a wire value)")
        elif isinstance(node, ast.Call):
            name = _call_name(node)
            if name in ("AttributeRef", "AttributeRef.of", "CaptureObject"):
                args = node.args[1:] + [k.value for k in node.keywords if k.arg in ("class_id", "attribute")]
                if any(_int(a) for a in args):
                    hit(node, "class id or index as a number")
            keys = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if INDEX_KEYS & set(keys) and any(_int(a) for a in node.args):
                hit(node, "class id or index default as a number")
        elif isinstance(node, ast.Dict):
            if sum(_int(k) for k in node.keys) >= 3:
                hit(node, "a table of numeric codes (event codes, control states: protocol/)")
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in INDEX_KEYS and _ints(value):
                    hit(node, f"{key.value} as a number")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr in INDEX_FIELDS for s in sides) and \
                    any(_ints(s) for s in sides):
                hit(node, "class id or index compared with a number")
        elif isinstance(node, ast.Assign) and _ints(node.value):
            for target in node.targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                for n in names:
                    if isinstance(n, ast.Name) and any(word in n.id for word in INDEX_NAMES):
                        hit(node, f"{n.id}: a class id or index constant")
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            s = node.slice
            if (module, ast.unparse(node)) not in ALLOWED_SLICES and (_int(s.lower) or _int(s.upper)
                                                                        or s.lower is not None):
                hit(node, "slice at fixed offsets (byte surgery?)")
    return found


def test_gateway_spells_out_no_cosem_numbers():
    found = []
    for path in sorted(GATEWAY.glob("*.py")):
        found += cosem_facts(path.read_text(), path.name)
    assert found == [], "COSEM knowledge in gateway/ (move it to protocol/, or allow-list it with a reason):\n" + \
        "\n".join(found)


def test_allow_list_entries_are_still_there():
    """An allow-list entry whose line is gone would silently allow the next one written like it."""
    sources = {p.name: p.read_text() for p in GATEWAY.glob("*.py")}
    for module, text in ALLOWED_SLICES:
        tree = ast.parse(sources[module])
        assert any(isinstance(n, ast.Subscript) and ast.unparse(n) == text for n in ast.walk(tree)), (module, text)


def test_the_check_sees_what_gateway_used_to_hold():
    """Each rule catches the kind of line it is for (these were in gateway/ before issue 12)."""
    old = '''
import struct
DISCONNECT_CLASS = 70
REMOTE_DISCONNECT_METHOD, REMOTE_RECONNECT_METHOD = 1, 2
refs = [AttributeRef(obis, 70, a) for a in (2, 3, 4)]
ref = AttributeRef.of("0.0.1.0.0.255", class_id=8)
class_id = int_param(params, "classId", 3, 1, 0xFFFF)
points = [{"key": "x", "obis": "0.0.42.0.0.255", "classId": 1}]
named = c.ref.attribute == 2
raw[9:11] = b"\\x80\\x00"
deviation = raw[9:]
STATES = {0: "disconnected", 1: "connected", 2: "ready_for_reconnection"}
'''
    found = cosem_facts(old, "old.py")
    lines = sorted({int(f.split(":")[1]) for f in found})
    assert lines == list(range(2, 13)), "\n".join(found)
