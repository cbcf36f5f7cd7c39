"""The store's cleanup round (``LeaseKeeper.clean`` runs it every ``cleanup_interval_s``):
messages whose time-to-live ran out, consumers that stopped saying they are alive, queues unused
for longer than their ``x-expires``; each in one bounded batch, so a round never holds locks
long."""

from __future__ import annotations

from dataclasses import dataclass

from .consumers import Consumers
from .messages import MessageSQL
from .queues import Queues

# Rows touched per statement when deleting expired messages or queues: bounds the lock time.
EXPIRED_BATCH = 1000


@dataclass(frozen=True)
class Cleanup:
    """What one round deleted: ``expired_messages`` and ``stale_consumers`` (counts) and the
    ``expired_queues`` (names)."""

    expired_messages: int
    stale_consumers: int
    expired_queues: list[str]


class Cleaner:
    """Runs the cleanup round over ``messages``, ``consumers`` and ``queues``. Database errors
    propagate as ``sqlalchemy.exc.SQLAlchemyError`` (the round stops there; the next one
    goes on)."""

    def __init__(self, messages: MessageSQL, consumers: Consumers, queues: Queues) -> None:
        self.messages = messages
        self.consumers = consumers
        self.queues = queues

    def clean(self, consumer_gone_after_s: float) -> Cleanup:
        """One round: up to ``EXPIRED_BATCH`` expired messages, the consumers unseen for
        ``consumer_gone_after_s`` seconds, up to ``EXPIRED_BATCH`` expired queues (with their
        messages and bindings)."""
        expired_messages = self.messages.delete_expired(EXPIRED_BATCH)
        stale_consumers = self.consumers.delete_stale_consumers(consumer_gone_after_s)
        expired_queues = self.queues.delete_expired_queues(EXPIRED_BATCH)
        return Cleanup(expired_messages, stale_consumers, expired_queues)
