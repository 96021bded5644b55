"""The session seam: the real session and the test fake both offer all of ``SessionLike``.

mypy checks the same (``gateway_fakes._is_a_session``, ``sessions.meter_session_factory``); this
test keeps the check in the test run, and compares signatures, which a structural ``isinstance``
would not.
"""
from __future__ import annotations

import inspect

import pytest
from gateway_fakes import FakeSession, MeterScript

from tb_dlms.gateway.sessions import SessionLike
from tb_dlms.protocol.session import MeterSession
from tb_dlms.protocol.settings import MeterSettings

SETTINGS = MeterSettings("127.0.0.1", 4059, name="seam")

MEMBERS = sorted({n for n in vars(SessionLike) if not n.startswith("_")} | set(SessionLike.__annotations__))


def test_the_protocol_declares_what_the_gateway_uses():
    assert {"stats", "settings", "associated", "connect", "read", "get", "set", "action", "read_profile",
            "profile_entries", "keep_alive", "change_keys", "close", "abort"} <= set(MEMBERS)


@pytest.mark.parametrize("make", [lambda: MeterSession(SETTINGS), lambda: FakeSession(SETTINGS, MeterScript())],
                         ids=["MeterSession", "FakeSession"])
@pytest.mark.parametrize("member", MEMBERS)
def test_sessions_implement_every_member_with_its_signature(make, member):
    session = make()
    assert hasattr(session, member), f"{type(session).__name__} lacks {member}"
    declared = getattr(SessionLike, member, None)
    if declared is None or isinstance(declared, property):
        return  # an attribute or a property: present, its type checked by mypy
    implemented = getattr(type(session), member)
    assert inspect.iscoroutinefunction(implemented) == inspect.iscoroutinefunction(declared), member
    assert list(inspect.signature(implemented).parameters) == list(inspect.signature(declared).parameters), member
