"""The rows the message store takes (PendingRow, for a batch) and gives back (ClaimedRow)."""

from __future__ import annotations

from dataclasses import dataclass

# The message table's columns a new row fills, in the order SQLite's inserts write them.
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
    """A message to insert: what ``put`` takes, for a batch. Its times (created, visible,
    expires ``ttl_s`` later, or never if None) are set by the store when it inserts the row,
    by the database's clock."""

    queue: str
    payload: str
    priority: int
    ttl_s: float | None


@dataclass(frozen=True)
class ClaimedRow:
    """A message a claim or take returned: its row ``id``, the serialized kombu message ``payload``
    (JSON text), how often it was delivered (``delivery_count``, this delivery included) and its
    ``priority`` (0-255, higher first)."""

    id: int
    payload: str
    delivery_count: int
    priority: int
