"""JSON-lines control channel, so a test or demo can misbehave a simulator in another process.

One JSON object per line in, one per line out (``{"ok": true, ...}`` or ``{"ok": false,
"error": ...}``). Commands:
  {"meter": "m1", "fault": "no_reply", "count": 3}     inject (also seconds/close/before)
  {"meter": "m1", "clear": true}  / {"meter": "m1", "clear": "delay"}
  {"meter": "m1", "reboot": true, "close": false}
  {"meter": "m1", "advance_clock": 900}              time passes faster (every interval captured)
  {"meter": "m1", "jump_clock": 86400}               a clock jump (skipped intervals never captured)
  {"stats": true}  /  {"stats": true, "meter": "m1"}
  {"list": true}
Loopback only by default: it is an unauthenticated way to break meters.
"""
from __future__ import annotations

import asyncio
import json

from .faults import Fault


class ControlServer:
    def __init__(self, sim, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if not line.strip():
                    continue
                try:
                    answer = {"ok": True, **(self.execute(json.loads(line)) or {})}
                except Exception as exc:  # noqa: BLE001 - reported to the caller
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write((json.dumps(answer) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def execute(self, cmd: dict) -> dict | None:
        sim = self.sim
        name = cmd.get("meter")
        if name is not None and name not in sim.meters:
            raise KeyError(f"no meter {name!r}")
        if "fault" in cmd:
            sim.inject(name, Fault.from_dict(cmd))
            return None
        if "clear" in cmd:
            kind = cmd["clear"] if isinstance(cmd["clear"], str) else None
            sim.clear(name, kind)
            return None
        if cmd.get("reboot"):
            sim.reboot(name, bool(cmd.get("close", True)))
            return None
        if "advance_clock" in cmd:
            sim.advance_clock(name, float(cmd["advance_clock"]))
            return None
        if "jump_clock" in cmd:
            sim.jump_clock(name, float(cmd["jump_clock"]))
            return None
        if cmd.get("stats"):
            return {"stats": sim.stats(name)}
        if cmd.get("list"):
            return {"meters": sim.describe()}
        raise ValueError(f"unknown command {cmd!r}")
