"""Simulated meters in a child process, so that CPU time measured by a benchmark is the client's."""
from __future__ import annotations

import multiprocessing as mp

from tb_dlms.simulator.spec import MeterSpec


def _serve(specs: list[dict], conn) -> None:
    from tb_dlms.simulator.simulator import Simulator

    with Simulator([MeterSpec.from_dict(s) for s in specs]) as sim:
        conn.send({s["name"]: sim.port_of(s["name"]) for s in specs})
        conn.recv()  # block until the parent says stop


class SimulatorProcess:
    def __init__(self, specs: list[dict]) -> None:
        self.specs = specs
        self._ports: dict[str, int] = {}

    def __enter__(self) -> "SimulatorProcess":
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(self.specs, child), daemon=True)
        self._proc.start()
        if not self._conn.poll(60):
            self._proc.kill()
            raise RuntimeError("simulator process did not start within 60 s")
        self._ports = self._conn.recv()
        return self

    def port(self, name: str) -> int:
        return self._ports[name]

    def __exit__(self, *exc) -> None:
        try:
            self._conn.send("stop")
        except OSError:
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
