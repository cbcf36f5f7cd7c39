"""MySQL's and MariaDB's message SQL. Claims lock their rows with ``FOR UPDATE SKIP LOCKED``
(MySQL 8, MariaDB 10.6), so consumers never wait for each other; there is no ``UPDATE …
RETURNING`` and no ``LIMIT`` in an ``IN`` subquery, so a claim, a renewal and the expiry read
the ids first, in the same transaction. Times are the server's ``UTC_TIMESTAMP(6)``
(``clock.MYSQL_NOW_SQL``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from .. import states
from ..rows import ClaimedRow, PendingRow
from .common import CommonMessages, in_delivery_order

# Deadlock (1213) and lock wait time-out (1205) end a claim that may be retried.
_DEADLOCK_CODES = frozenset({1213, 1205})
_DEADLOCK_RETRIES = 3
# A no-ack take is a claim and an ack; the lease only covers the moment between the two.
_TAKE_OWNER = "no-ack"
_TAKE_LEASE_S = 60.0


class MysqlMessages(CommonMessages):
    """``MessageSQL`` on MySQL and MariaDB (see the module docstring)."""

    def put(self, queue: str, payload: str, priority: int, ttl_s: float | None) -> None:
        """See ``MessageSQL.put``."""
        row = PendingRow(queue, payload, priority, ttl_s)
        self._db.execute(self._insert_rows(), None, self._insert_parameters(row))

    def _insert_many(self, connection: sa.Connection, rows: Sequence[PendingRow]) -> None:
        connection.execute(self._insert_rows(), [self._insert_parameters(row) for row in rows])

    def claim(
        self, queue: str, owner: str, lease_s: float, limit: int, acked: Sequence[int] = ()
    ) -> list[ClaimedRow]:
        """See ``MessageSQL.claim``: retried when InnoDB picks it as a deadlock victim (it is
        safe to repeat), at most three times."""
        message = self.message
        now = self._db.now()
        ready = self._ready(queue, now, limit).with_for_update(skip_locked=True)
        lease = {
            "visible_at": now + lease_s,
            "lease_owner": owner,
            "delivery_count": message.c.delivery_count + 1,
        }
        for attempt in range(_DEADLOCK_RETRIES):
            try:
                return in_delivery_order(self._claim_once(ready, lease, acked))
            except sa.exc.OperationalError as exc:
                code = getattr(exc.orig, "args", (None,))[0]
                if code not in _DEADLOCK_CODES or attempt == _DEADLOCK_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _ready(self, queue: str, now: sa.ColumnElement[float], limit: int) -> sa.Select[int]:
        """Ids of the next ``limit`` ready messages of ``queue``, in delivery order."""
        message = self.message
        return (
            sa.select(message.c.id)
            .where(message.c.queue == queue, states.ready(message, now))
            .order_by(message.c.priority.desc(), message.c.id)
            .limit(limit)
        )

    def _claim_once(
        self, ready: sa.Select[int], lease: dict[str, Any], acked: Sequence[int]
    ) -> Sequence[Any]:
        message = self.message
        returned = (message.c.id, message.c.payload, message.c.delivery_count, message.c.priority)
        with self._db.engine.begin() as connection:
            for in_acked in self._ids_in(connection, acked):
                connection.execute(sa.delete(message).where(in_acked))
            ids = list(connection.execute(ready).scalars())
            claimed: list[Any] = []
            # In chunks within the parameter limit (``limit`` is a prefetch count: unbounded).
            for in_ids in self._ids_in(connection, ids):
                connection.execute(sa.update(message).where(in_ids).values(**lease))
                claimed += connection.execute(sa.select(*returned).where(in_ids)).all()
            return claimed

    def take(self, queue: str, limit: int, acked: Sequence[int] = ()) -> list[ClaimedRow]:
        """See ``MessageSQL.take``: a claim, then an ack of what it claimed."""
        claimed = self.claim(queue, _TAKE_OWNER, _TAKE_LEASE_S, limit, acked)
        self.ack([row.id for row in claimed])
        return claimed

    def _renew_in(
        self, connection: sa.Connection, held: sa.ColumnElement[bool], renew: sa.Update
    ) -> set[int]:
        # No UPDATE … RETURNING: read back, in the same transaction, the rows the update
        # locked (a row this owner does not hold cannot become its own).
        connection.execute(renew)
        return set(connection.execute(sa.select(self.message.c.id).where(held)).scalars())

    def delete_expired(self, limit: int) -> int:
        """See ``MessageSQL.delete_expired``: the ids first, then their delete."""
        message = self.message
        with self._db.engine.begin() as connection:
            ids = list(connection.execute(self._expired(limit)).scalars())
            return sum(
                connection.execute(sa.delete(message).where(in_ids)).rowcount
                for in_ids in self._ids_in(connection, ids)
            )
