"""Keep gurux's print() calls off the simulator's stdout (the CLI prints a table people parse).

Uses the project's ``protocol.quiet.silence_gurux`` when present; otherwise shadows ``print``
in the already-imported gurux modules, which is enough for the server paths we use.
"""
from __future__ import annotations

import logging
import sys

_log = logging.getLogger("tb_dlms.simulator.gurux")


def _to_log(*args, **kwargs) -> None:
    _log.debug(" ".join(str(a) for a in args))


def silence() -> None:
    try:
        from ..protocol.quiet import silence_gurux
    except ImportError:
        pass
    else:
        silence_gurux("tb_dlms.simulator.gurux")
        return
    for name, module in list(sys.modules.items()):
        if name.startswith("gurux_dlms") and module is not None:
            vars(module)["print"] = _to_log
