"""Test rig only: let a Linux pseudo-terminal accept the 7E1 line settings of a mode E sign-on.

A pty refuses ``tcsetattr`` with 7 data bits and even parity (EINVAL, seen on this machine's
kernel; a parity bit at all, also 8E1 on the way back to 8N1), where a real UART takes them. The
production serial link asks for 7E1 and reports a port that refuses it; so the rig, not the
production code, gives way: on a pty only, a refused
7E1 setting is applied as 8N1 (a pty carries bytes, not bits: the characters are the same),
while pyserial keeps reporting what was asked. Each such request is counted in
``REQUESTED_7E1`` so a test can check that 7E1 really was asked for.

In-process: ``install()``. For a gateway subprocess: ``sitecustomize_dir(tmp)`` gives a
directory to put first on its PYTHONPATH.
"""
from __future__ import annotations

import errno
import os
import termios
from pathlib import Path
from typing import Any

REQUESTED_7E1: list[str] = []
#: Printed on stderr by the subprocess patch (the gateway's output is captured): one per request.
MARK = "pty_7e1: 7E1 requested on"


def _is_pty(path: str) -> bool:
    return os.path.realpath(path).startswith("/dev/pts/")


def install(announce: bool = False) -> None:
    import serial
    from serial import serialposix

    cls: Any = serialposix.Serial  # _reconfigure_port is private: not in pyserial's stubs
    if getattr(cls._reconfigure_port, "_pty_7e1", False):
        return
    original = cls._reconfigure_port

    def reconfigure(self, force_update=False):
        try:
            return original(self, force_update)
        except termios.error as exc:
            if not (exc.args and exc.args[0] == errno.EINVAL and _is_pty(self._port)
                    and (self._bytesize == 7 or self._parity != serial.PARITY_NONE)):
                raise
        REQUESTED_7E1.append(self._port)
        if announce:
            import sys

            print(f"{MARK} {self._port}", file=sys.stderr, flush=True)
        asked = self._bytesize, self._parity
        self._bytesize, self._parity = serial.EIGHTBITS, serial.PARITY_NONE
        try:
            return original(self, force_update)
        finally:
            self._bytesize, self._parity = asked

    reconfigure._pty_7e1 = True  # type: ignore[attr-defined]
    cls._reconfigure_port = reconfigure


def sitecustomize_dir(where: str | os.PathLike) -> Path:
    """A directory holding a sitecustomize.py that installs the patch in any Python started with it."""
    path = Path(where) / "pty7e1_site"
    path.mkdir(parents=True, exist_ok=True)
    (path / "sitecustomize.py").write_text(
        "try:\n"
        "    from tb_dlms.devtools import pty_7e1\n"
        "    pty_7e1.install(announce=True)\n"
        "except ImportError:\n"
        "    pass\n"
    )
    return path
