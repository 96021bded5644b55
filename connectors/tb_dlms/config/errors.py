"""Configuration problems, phrased so an operator can fix the file without reading our code."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConfigError:
    """One problem: where it is (device, field path) and what is wrong with it.

    ``path`` is relative to the device for device problems (``connection.port``) and absolute for
    connector-level ones (``pollPeriod``, ``defaults.timeoutMs``). Messages never carry secrets.
    """

    path: str
    message: str
    device_index: int | None = None
    device_name: str | None = None

    @property
    def device(self) -> str | None:
        if self.device_index is None:
            return None
        if self.device_name:
            return f'devices[{self.device_index}] "{self.device_name}"'
        return f"devices[{self.device_index}]"

    def __str__(self) -> str:
        where = f"{self.path} " if self.path else ""
        text = f"{where}{self.message}"
        return f"{self.device}: {text}" if self.device else text


class ConfigInvalid(ValueError):
    """Raised by the strict loader; carries every problem found, not just the first."""

    def __init__(self, errors: "list[ConfigError]") -> None:
        self.errors = list(errors)
        lines = "\n  ".join(str(e) for e in self.errors)
        super().__init__(f"{len(self.errors)} configuration error(s):\n  {lines}")
