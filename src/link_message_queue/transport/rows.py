"""The rows the message store takes (PendingRow, for a batch) and gives back (ClaimedRow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The message table's columns a new row fills, in the order of ``PendingRow.values()``.
INSERT_COLUMNS = (
    "queue",
    "priority",
    "payload",
    "created_at",
    "visible_at",
    "expires_at",
    "delivery_count",
)


@dataclass(frozen=True)
class PendingRow:
    """A message to insert: what ``put`` takes, for a batch."""

    queue: str
    payload: str
    priority: int
    expires_at: float | None
    created_at: float

    def values(self) -> tuple[Any, ...]:
        """The row in ``INSERT_COLUMNS`` order: visible at once, never delivered yet."""
        return (
            self.queue,
            self.priority,
            self.payload,
            self.created_at,
            self.created_at,
            self.expires_at,
            0,
        )


@dataclass(frozen=True)
class ClaimedRow:
    id: int
    payload: str
    delivery_count: int
    priority: int
