"""Stand-ins for the gateway and for meter sessions, so the adapter is tested without either.

The gateway stand-in lives in ``tb_dlms.devtools.fake_gateway`` (the benchmarks use it too); it is
re-exported here so that tests keep importing everything fake from this one module.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import threading
from typing import Any, Callable, Sequence

from tb_dlms.devtools.fake_gateway import FakeGateway, RemoteHandler  # noqa: F401 - re-exported
from tb_dlms.gateway.sessions import SessionLike
from tb_dlms.protocol.obis import ObisCode
from tb_dlms.protocol.profile import ProfileData
from tb_dlms.protocol.readings import AttributeRef, Reading
from tb_dlms.protocol.settings import MeterSettings
from tb_dlms.protocol.stats import SessionStats


class MeterScript:
    """How one fake meter behaves; shared by every session made for it."""

    def __init__(self, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                 hang: bool = False, hang_close: bool = False, fail: Exception | None = None,
                 refuse_keys: Exception | None = None) -> None:
        self.values = values or {}
        self.errors = errors or {}
        self.hang = hang
        self.hang_close = hang_close
        self.fail = fail
        #: Raised by change_keys (a meter refusing a key transfer); None: keys accepted.
        self.refuse_keys = refuse_keys
        #: Key changes accepted: (block cipher key, authentication key, Security Setup OBIS).
        self.key_changes: list[tuple[bytes, bytes, str]] = []
        self.reads = 0
        self.reads_started = 0
        #: Sessions ended, by close() or abort().
        self.closes = 0
        self.sessions: list["FakeSession"] = []
        self.read_refs: list[list[AttributeRef]] = []
        self.writes: list[tuple[AttributeRef, Any, str | None]] = []
        self.actions: list[tuple[AttributeRef, Any, str | None]] = []
        self._cond = threading.Condition()

    def bump(self, attr: str) -> None:
        with self._cond:
            setattr(self, attr, getattr(self, attr) + 1)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)


class FakeSession:
    """A ``SessionLike`` following a ``MeterScript`` (mypy checks it against the protocol below)."""

    def __init__(self, settings: MeterSettings, script: MeterScript) -> None:
        self.settings = settings
        self.script = script
        self.stats = SessionStats()
        self._associated = False

    @property
    def associated(self) -> bool:
        return self._associated

    @property
    def identification(self) -> str | None:
        return None

    async def connect(self) -> None:
        self._associate()

    def _associate(self) -> None:
        if not self._associated:
            self._associated = True
            self.stats.associations += 1

    async def read(self, refs: Sequence[AttributeRef]) -> list[Reading]:
        self.script.bump("reads_started")
        self.script.read_refs.append(list(refs))
        if self.script.hang:
            await asyncio.Event().wait()
        if self.script.fail is not None:
            raise self.script.fail
        self._associate()
        out = []
        for ref in refs:
            key = str(ref.obis)
            if key in self.script.errors:
                out.append(Reading(ref, error=f"{ref}: {self.script.errors[key]}"))
            else:
                out.append(Reading(ref, self.script.values.get(key, 1.0), "V", -1))
        self.script.bump("reads")
        return out

    async def get(self, ref: AttributeRef) -> Reading:
        return (await self.read([ref]))[0]

    async def set(self, ref: AttributeRef, value: Any, data_type_name: str | None = None) -> None:
        self._associate()
        self.script.writes.append((ref, value, data_type_name))

    async def action(self, ref: AttributeRef, value: Any = 0, data_type_name: str | None = "int8") -> Any:
        self._associate()
        self.script.actions.append((ref, value, data_type_name))
        return None

    async def read_profile(self, obis: ObisCode | str, start: dt.datetime | None = None,
                           end: dt.datetime | None = None, *, entries: tuple[int, int] | None = None,
                           local_offset_min: int | None = None) -> ProfileData:
        self._associate()
        return ProfileData(ObisCode.parse(obis), [])

    async def profile_entries(self, obis: ObisCode | str) -> int:
        return 0

    async def keep_alive(self) -> bool:
        return False

    def scaler_of(self, ref: AttributeRef) -> int | None:
        return None

    async def change_keys(self, block_cipher_key: bytes, authentication_key: bytes,
                          security_setup: ObisCode | None = None) -> None:
        self._associate()
        if self.script.refuse_keys is not None:
            raise self.script.refuse_keys
        self.script.key_changes.append((bytes(block_cipher_key), bytes(authentication_key),
                                        str(security_setup or "0.0.43.0.0.255")))

    async def close(self) -> None:
        self.script.bump("closes")
        if self.script.hang_close:
            await asyncio.Event().wait()
        self._associated = False

    async def abort(self) -> None:
        """Ends the session at once, hung or not: a real abort sends nothing it could wait for."""
        self.script.bump("closes")
        self._associated = False


def _is_a_session(session: FakeSession) -> SessionLike:
    return session  # mypy: FakeSession implements all of SessionLike


class FakeFleet:
    """A ``session_factory`` that makes fake sessions following each meter's script."""

    def __init__(self, **scripts: MeterScript) -> None:
        self.scripts = scripts

    def script(self, name: str) -> MeterScript:
        return self.scripts.setdefault(name, MeterScript())

    def __call__(self, settings: MeterSettings) -> FakeSession:
        script = self.script(settings.name)
        session = FakeSession(settings, script)
        script.sessions.append(session)
        return session
