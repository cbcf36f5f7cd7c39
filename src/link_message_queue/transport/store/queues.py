"""Declared queues (table ``{prefix}queue``): declaring, looking up, deleting, and dropping the
ones unused for longer than their ``x-expires``. Deleting a queue deletes its messages and
bindings with it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ...db import QueueTables
from ...db.dialects import insert_ignoring_duplicates
from .connections import Connections


class Queues:
    """The queue rows of ``tables`` reached through ``connections``. Times are Unix seconds by
    the database's clock. Methods that take an optional ``connection`` run in the caller's
    transaction when given one, else in their own. Database errors propagate as
    ``sqlalchemy.exc.SQLAlchemyError``."""

    def __init__(self, connections: Connections, tables: QueueTables) -> None:
        self._db = connections
        self.tables = tables

    def declare_queue(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        connection: sa.Connection | None = None,
        *,
        expires_s: float | None = None,
        message_ttl_s: float | None = None,
    ) -> None:
        """Create the queue row if it is missing (``arguments``: the AMQP queue arguments, kept
        as JSON; ``expires_s``: unused this long it is dropped; ``message_ttl_s``: its messages'
        time-to-live); never fails on a concurrent declare (and so never aborts a caller's
        PostgreSQL transaction)."""
        now = self._db.now()
        values = {
            "name": name,
            "created_at": now,
            "arguments": json.dumps(arguments) if arguments else None,
            "expires_s": expires_s,
            "message_ttl_s": message_ttl_s,
            "last_used_at": now,
        }
        statement = insert_ignoring_duplicates(self._db.dialect, self.tables.queue, values)
        self._db.execute(statement, connection)

    def queue_message_ttl_s(self, name: str) -> float | None:
        """The queue's per-message time-to-live in seconds (AMQP ``x-message-ttl``, declared in ms),
        or None if it has none or the queue does not exist."""
        queue = self.tables.queue
        statement = sa.select(queue.c.message_ttl_s).where(queue.c.name == name)
        return self._db.scalar(statement, None)  # type: ignore[no-any-return]

    def queue_names(self) -> list[str]:
        """The names of all declared queues, sorted."""
        queue = self.tables.queue
        with self._db.reader.connect() as connection:
            return list(
                connection.execute(sa.select(queue.c.name).order_by(queue.c.name)).scalars()
            )

    def has_queue(self, name: str, connection: sa.Connection | None = None) -> bool:
        """Whether a queue called ``name`` is declared (read on ``connection`` if given)."""
        queue = self.tables.queue
        statement = sa.select(queue.c.name).where(queue.c.name == name)
        return self._db.scalar(statement, connection) is not None

    def delete_queue(self, name: str) -> None:
        """Delete the queue ``name`` with its messages and bindings, in one transaction."""
        with self._db.engine.begin() as connection:
            self._delete_queues(connection, [name])

    def delete_expired_queues(self, limit: int) -> list[str]:
        """Drop up to ``limit`` queues unused for longer than their ``x-expires``, with their
        messages and bindings; returns their names."""
        queue = self.tables.queue
        now = self._db.now()
        with self._db.engine.begin() as connection:
            names = list(
                connection.execute(
                    sa.select(queue.c.name)
                    .where(
                        queue.c.expires_s.isnot(None),
                        queue.c.last_used_at + queue.c.expires_s < now,
                    )
                    .limit(limit)
                ).scalars()
            )
            if names:
                self._delete_queues(connection, names)
        return names

    def _delete_queues(self, connection: sa.Connection, names: Sequence[str]) -> None:
        tables = self.tables
        connection.execute(sa.delete(tables.message).where(tables.message.c.queue.in_(names)))
        connection.execute(sa.delete(tables.binding).where(tables.binding.c.queue.in_(names)))
        connection.execute(sa.delete(tables.queue).where(tables.queue.c.name.in_(names)))
