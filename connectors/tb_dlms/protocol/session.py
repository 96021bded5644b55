"""A meter session: one association with one meter, driven from an asyncio event loop.

(API contract; implementation in progress.)
"""
from __future__ import annotations

from typing import Any, Sequence

from .readings import AttributeRef, Reading
from .settings import MeterSettings
from .stats import SessionStats


class MeterSession:
    def __init__(self, settings: MeterSettings, links: "Any | None" = None) -> None:
        self.settings = settings
        self.stats = SessionStats()

    @property
    def associated(self) -> bool:
        raise NotImplementedError

    async def connect(self) -> None:
        """Open transport and associate (SNRM/UA, frame counter, AARQ/AARE). Idempotent."""
        raise NotImplementedError

    async def read(self, refs: Sequence[AttributeRef]) -> list[Reading]:
        """Read many attributes (GET-with-list); per-attribute errors in Reading.error."""
        raise NotImplementedError

    async def get(self, ref: AttributeRef) -> Reading:
        raise NotImplementedError

    async def set(self, ref: AttributeRef, value: Any, data_type: str | None = None) -> None:
        raise NotImplementedError

    async def action(self, ref: AttributeRef, value: Any = 0, data_type: str | None = None) -> Any:
        """Invoke method ``ref.attribute`` of the object."""
        raise NotImplementedError

    async def keep_alive(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Release the association and close the transport. Never raises."""
        raise NotImplementedError
