"""The CLI in a child process: table, READY, control channel, clean exit on SIGINT."""
from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys

import pytest
from gurux_dlms import GXDLMSClient
from gurux_dlms.enums import Authentication, InterfaceType

from dlms_client import DlmsTestClient, data
from tb_dlms.simulator import MeterSpec, Simulator


def _read_until_ready(proc) -> list[str]:
    lines = []
    for line in proc.stdout:
        line = line.rstrip("\n")
        if line == "READY":
            return lines
        lines.append(line)
    raise AssertionError(f"simulator exited early: {lines} {proc.stderr.read()}")


def _control(port: int, cmd: dict) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall((json.dumps(cmd) + "\n").encode())
        return json.loads(s.makefile().readline())


def test_cli_table_control_and_sigint():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tb_dlms.simulator", "--meters", "2", "--base-port", "0",
         "--hdlc-shared-port", "0", "--hdlc-meters", "2", "--control-port", "0", "--auth", "low"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = _read_until_ready(proc)
        meters = [line for line in lines if line.startswith(("meter-", "bus-"))]
        assert len(meters) == 4
        assert "auth=low" in meters[0] and "clients=16,32" in meters[0]
        control = int(next(line for line in lines if line.startswith("control")).rsplit(":", 1)[1])
        listing = _control(control, {"list": True})["meters"]
        port = next(m["port"] for m in listing if m["name"] == "meter-1")

        assert _control(control, {"meter": "meter-1", "fault": "no_reply", "count": 1})["ok"]
        assert not _control(control, {"meter": "nope", "clear": True})["ok"]
        with DlmsTestClient("127.0.0.1", port, client=32, auth="low", password="12345678",
                            timeout=0.4) as c:
            with pytest.raises(TimeoutError):
                c.connect()  # the AARQ is swallowed
        with DlmsTestClient("127.0.0.1", port, client=32, auth="low", password="12345678") as c:
            c.connect()
            assert c.read(data("0.0.96.1.0.255"), 2)
        stats = _control(control, {"stats": True, "meter": "meter-1"})["stats"]
        assert stats["associations"] == 1 and stats["requests"] >= 3
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    assert proc.stderr.read() == ""


def test_async_api_in_existing_loop():
    async def main():
        async with Simulator([MeterSpec("a1")]) as sim:
            port = sim.port_of("a1")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            aarq = GXDLMSClient(True, 16, 1, Authentication.NONE, None, InterfaceType.WRAPPER).aarqRequest()[0]
            writer.write(bytes(aarq))
            header = await reader.readexactly(8)
            body = await reader.readexactly(int.from_bytes(header[6:8], "big"))
            assert body[0] == 0x61  # AARE
            writer.close()
            assert sim.stats("a1")["associations"] == 1

    asyncio.run(main())


def test_help_shows_the_defaults_a_client_needs():
    """``--help`` names the password, ports, addresses and keys: a user must not read code for them."""
    out = subprocess.run([sys.executable, "-m", "tb_dlms.simulator", "--help"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    flat = " ".join(out.split())  # argparse wraps help text at the terminal width
    spec = MeterSpec("x")
    for flag, default in [("--password", spec.password), ("--base-port", "4059"), ("--host", "127.0.0.1"),
                          ("--auth", "none"), ("--block-cipher-key", spec.block_cipher_key.hex()),
                          ("--authentication-key", spec.authentication_key.hex()), ("--hdlc-meters", "3")]:
        assert flag in flat, out
        assert f"(default: {default})" in flat, f"{flag}: no default {default!r} in --help:\n{out}"
    assert "32 for low" in flat and "1 for high_gmac" in flat, out
