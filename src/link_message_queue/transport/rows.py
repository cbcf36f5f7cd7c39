"""The rows the message store takes (PendingRow, for a batch) and gives back (ClaimedRow)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PendingRow:
    """A message to insert: what ``put`` takes, for a batch."""

    queue: str
    payload: str
    priority: int
    expires_at: float | None
    created_at: float


@dataclass(frozen=True)
class ClaimedRow:
    id: int
    payload: str
    delivery_count: int
    priority: int
