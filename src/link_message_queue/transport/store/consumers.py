"""Live consumers (table ``{prefix}consumer``): a consumer's heartbeat lists it with its queues
(and keeps those queues from expiring); a stopped or killed consumer leaves the list."""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa

from ...db import QueueTables
from ...db.dialects import upsert
from .connections import Connections


class Consumers:
    """The live-consumer rows of ``tables`` reached through ``connections``. Times are Unix
    seconds by the database's clock. Database errors propagate as
    ``sqlalchemy.exc.SQLAlchemyError``."""

    def __init__(self, connections: Connections, tables: QueueTables) -> None:
        self._db = connections
        self.tables = tables

    def heartbeat(self, owner: str, queues: Sequence[str]) -> None:
        """A live consumer ``owner`` of ``queues``: those queues do not expire, and it is listed
        (with them) as alive."""
        now = self._db.now()
        queue, consumer = self.tables.queue, self.tables.consumer
        with self._db.single.begin() as connection:
            if queues:
                connection.execute(
                    sa.update(queue).where(queue.c.name.in_(queues)).values(last_used_at=now)
                )
            connection.execute(
                upsert(
                    self._db.dialect,
                    consumer,
                    {
                        "owner": owner,
                        "queues": json.dumps(sorted(queues)),
                        "started_at": now,
                        "last_seen_at": now,
                    },
                    update=("queues", "last_seen_at"),
                )
            )

    def forget_consumer(self, owner: str) -> None:
        """Remove ``owner`` from the live-consumer list (a consumer that stops)."""
        consumer = self.tables.consumer
        with self._db.single.begin() as connection:
            connection.execute(sa.delete(consumer).where(consumer.c.owner == owner))

    def delete_stale_consumers(self, unseen_for_s: float) -> int:
        """Forget consumers not seen for ``unseen_for_s`` seconds (killed processes); returns
        how many."""
        consumer = self.tables.consumer
        with self._db.single.begin() as connection:
            return connection.execute(
                sa.delete(consumer).where(consumer.c.last_seen_at < self._db.now() - unseen_for_s)
            ).rowcount
