"""``TickOccurred``: the heartbeat event of prooph LINK; each tick runs one consumer step."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID, uuid4

from .names import TICK_OCCURRED_NAME
from .timestamps import now, require_aware


@dataclass(frozen=True)
class TickOccurred:
    """An event with an empty payload: no counter and no interval, as in link-app-core."""

    uuid: UUID = field(default_factory=uuid4)
    created_at: datetime = field(default_factory=now)
    version: int = 1

    @property
    def name(self) -> str:
        """The message name of prooph LINK's ``TickOccurred`` event."""
        return TICK_OCCURRED_NAME

    def __post_init__(self) -> None:
        require_aware(self.created_at, "created_at")
