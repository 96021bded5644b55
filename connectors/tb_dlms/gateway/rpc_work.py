"""What a device RPC hands to the polling loop: the work, its time bound, and how it refuses.

Shared by rpc.py (request parsing, the built-in methods, dispatch) and commands.py (the methods that
write to a meter or read its profile and clock), so neither has to import the other.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Awaitable, Callable

from .device import DLMSDevice

#: Longest a device RPC may take on the loop (reads wait behind a poll in progress).
DEVICE_RPC_TIMEOUT_S = 10.0

#: The coroutine that serves one device RPC on the polling loop; its dict is the reply.
DeviceRun = Callable[[DLMSDevice], Awaitable[dict]]


class RpcError(Exception):
    """A request we refuse; its message is the ``error`` of the reply."""


@dataclass(frozen=True, slots=True)
class DeviceWork:
    """A checked device RPC: what to run on the loop, and for how long at most.

    ``timeout_s`` None is the usual bound, :data:`DEVICE_RPC_TIMEOUT_S` read when the call runs;
    a method that reads a lot (readProfile) carries its own.
    """

    run: DeviceRun
    timeout_s: float | None = None

    def bound_s(self) -> float:
        return DEVICE_RPC_TIMEOUT_S if self.timeout_s is None else self.timeout_s


#: Method name -> builder that validates the params and returns the work to run on the loop.
DeviceMethod = Callable[[dict], DeviceWork]


def int_param(params: dict, key: str, default: int, lo: int, hi: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RpcError(f"params.{key} must be an integer {lo}..{hi}, got {json.dumps(value)}")
    return value
