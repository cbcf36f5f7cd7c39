"""A channel's own PostgreSQL connection for its publishes outside a caller's transaction:
checked out of the pool once, autocommit, and one server-side prepared statement a message.

Why: through SQLAlchemy, each publish paid a pool checkout and check-in, a transaction
bracket (empty in autocommit, yet Python work), a compiled-statement lookup and a result
object; the statement itself (one INSERT and its NOTIFY) is a fraction of that. Publishing
runs in the caller's process, under its GIL, once per task.

The connection goes back to the pool (autocommit switched off again by SQLAlchemy) when the
channel closes. A connection error discards it (the next publish checks out another) and
comes out as SQLAlchemy's error, which kombu retries as a connection error. A forked child
never touches the connection it inherited: it neither closes it nor returns it to the pool,
since either would talk on its parent's socket.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import sqlalchemy as sa

from .rows import PendingRow


class PutConnection:
    """Runs ``sql`` (named parameters ``queue``, ``priority``, ``payload``, ``ttl_s``,
    ``channel``; psycopg's ``%(name)s`` style) once per message on a connection held from
    ``engine``, which must be in autocommit (each message commits alone)."""

    def __init__(self, engine: sa.Engine, sql: str, notify_channel: str) -> None:
        self._engine = engine
        self._sql = sql
        self._notify_channel = notify_channel
        self._held: sa.Connection | None = None
        self._cursor: Any = None
        _open.add(self)

    def put(self, row: PendingRow) -> None:
        """Insert ``row`` and signal its queue, committed on return. Raises SQLAlchemy's
        ``DBAPIError`` subclasses (``OperationalError`` for a lost connection)."""
        cursor = self._cursor if self._held is not None else self._open()
        parameters = {
            "queue": row.queue,
            "priority": row.priority,
            "payload": row.payload,
            "ttl_s": row.ttl_s,
            "channel": self._notify_channel,
        }
        try:
            cursor.execute(self._sql, parameters, prepare=True)
        except self._engine.dialect.loaded_dbapi.Error as exc:
            driver = cursor.connection
            lost = driver.closed or driver.broken
            if lost:
                self._discard()
            raise sa.exc.DBAPIError.instance(
                self._sql,
                parameters,
                exc,
                self._engine.dialect.loaded_dbapi.Error,
                dialect=self._engine.dialect,
                connection_invalidated=lost,
            ) from exc
        except BaseException:
            # Interrupted mid-statement: the connection's state is unknown.
            self._discard()
            raise

    def close(self) -> None:
        """Give the connection back to the pool (with its autocommit reset)."""
        held, self._held, self._cursor = self._held, None, None
        if held is not None:
            held.close()

    def _open(self) -> Any:
        held = self._engine.connect()
        try:
            cursor = held.connection.driver_connection.cursor()  # type: ignore[union-attr]
        except BaseException:
            held.close()
            raise
        self._held, self._cursor = held, cursor
        return cursor

    def _discard(self) -> None:
        held, self._held, self._cursor = self._held, None, None
        if held is not None:
            held.invalidate()
            held.close()

    def _abandon_in_child(self) -> None:
        held, self._held, self._cursor = self._held, None, None
        if held is not None:
            # Kept referenced for good: neither closed nor garbage-collected back into the pool.
            _inherited.append(held)


_open: weakref.WeakSet[PutConnection] = weakref.WeakSet()
_inherited: list[sa.Connection] = []


def _abandon_in_child() -> None:
    for put_connection in list(_open):
        put_connection._abandon_in_child()


os.register_at_fork(after_in_child=_abandon_in_child)
