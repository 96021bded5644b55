"""Run a real Mosquitto broker on a loopback port for tests and the demo.

    broker = MosquittoBroker()          # picks a free port
    broker.start()                      # returns once the broker accepts TCP connections
    ... broker.port ...
    broker.stop(); broker.start()       # same port again (outage tests)
    broker.close()                      # stop and remove the temp dir

Also usable as a context manager. The broker listens on 127.0.0.1 only, anonymous, no persistence.
``MosquittoBroker(users={"token": "secret"})`` refuses every other username (a wrong access token
gets "not authorised" in its CONNACK, as from ThingsBoard).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


class MosquittoNotFound(RuntimeError):
    pass


def find_mosquitto() -> str:
    env = os.environ.get("MOSQUITTO")
    if env:
        return env
    for candidate in CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise MosquittoNotFound(
        "mosquitto not found; install it (Debian/Ubuntu: apt-get install -y mosquitto) or set MOSQUITTO=/path"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_port_open(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Poll-connect until the port accepts connections (bounded); fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {host}:{port} opened")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} did not accept connections within {timeout:.1f}s")
        time.sleep(delay)  # polling interval of a bounded readiness probe, not synchronisation
        delay = min(delay * 2, 0.2)


class MosquittoBroker:
    host = "127.0.0.1"

    def __init__(self, port: int = 0, workdir: str | os.PathLike | None = None, verbose: bool = False,
                 users: dict[str, str] | None = None) -> None:
        self.users = dict(users or {})
        self.port = port or free_port(self.host)
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="tb-dlms-mosquitto-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.verbose = verbose
        self.proc: subprocess.Popen | None = None
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"

    # -- lifecycle ---------------------------------------------------------------------------
    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous false" if self.users else "allow_anonymous true",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "max_inflight_messages 0",
            "max_queued_messages 100000",
        ]
        if self.verbose:
            lines += ["log_type information", "connection_messages true"]
        if self.users:
            passwords = self.workdir / "passwords"
            passwords.write_text("")
            for user, password in self.users.items():
                subprocess.run([shutil.which("mosquitto_passwd") or "mosquitto_passwd", "-b", str(passwords),
                                user, password], check=True, capture_output=True)
            lines.append(f"password_file {passwords}")
            if os.geteuid() == 0:
                # Started as root, mosquitto would drop to the "mosquitto" user, which cannot read
                # the file under a private temp dir.
                lines.append("user root")
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> "MosquittoBroker":
        if self.running:
            return self
        self._write_config()
        log = open(self.log_path, "ab")
        try:
            # Retry a few times: after stop() the port can be briefly unavailable.
            deadline = time.monotonic() + timeout
            while True:
                self.proc = subprocess.Popen(
                    [find_mosquitto(), "-c", str(self.config_path)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                )
                try:
                    wait_port_open(self.host, self.port, max(0.5, deadline - time.monotonic()), self.proc)
                    return self
                except RuntimeError:
                    if time.monotonic() >= deadline:
                        raise RuntimeError(f"mosquitto failed to start on port {self.port}; see {self.log_path}:\n"
                                           + self.log_tail()) from None
                    time.sleep(0.2)  # port still held by the previous instance; bounded retry
        finally:
            log.close()

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> "MosquittoBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MosquittoBroker({self.host}:{self.port}, running={self.running})"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Run a throw-away Mosquitto broker on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    broker = MosquittoBroker(args.port, verbose=True).start()
    print(f"mosquitto listening on {broker.host}:{broker.port} (Ctrl-C to stop)", flush=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        broker.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
