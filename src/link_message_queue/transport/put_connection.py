"""A channel's own connection for its publishes outside a caller's transaction: checked out
of the pool once, in autocommit, one statement a message (server-side prepared on PostgreSQL).

Why: through SQLAlchemy, each publish paid a pool checkout and check-in, a transaction
bracket (empty in autocommit, yet Python work), a compiled-statement lookup and a result
object; the statement itself (one INSERT, and its NOTIFY on PostgreSQL) is a fraction of that.
Publishing runs in the caller's process, under its GIL, once per task.

The connection goes back to the pool (autocommit switched off again by SQLAlchemy where it
switched it on) when the channel closes. A lost connection is discarded (the next publish
checks out another); errors come out as SQLAlchemy's, so kombu retries a lost connection as a
connection error. A forked child never touches the connection it inherited: it neither closes
it nor returns it to the pool, since either would talk on its parent's socket.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from .rows import PendingRow

# A message's statement for the driver's cursor: (SQL, parameters).
Statement = Callable[[PendingRow], tuple[str, Any]]


class PutConnection:
    """Runs ``statement(row)`` once per message on a connection held from ``engine``, whose
    connections must be in autocommit (each message commits alone). ``prepare``: ask the
    driver (psycopg) to prepare the statement on the server."""

    def __init__(self, engine: sa.Engine, statement: Statement, *, prepare: bool) -> None:
        self._engine = engine
        self._statement = statement
        self._options = {"prepare": True} if prepare else {}
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._held: sa.Connection | None = None
        self._cursor: Any = None
        _open.add(self)

    def put(self, row: PendingRow) -> None:
        """Insert ``row`` (and signal its queue on PostgreSQL), committed on return. Raises
        SQLAlchemy's ``DBAPIError`` subclasses (``OperationalError`` for a lost connection)."""
        cursor = self._cursor if self._held is not None else self._open()
        sql, parameters = self._statement(row)
        try:
            cursor.execute(sql, parameters, **self._options)
        except self._dbapi_error as exc:
            driver = cursor.connection
            lost = bool(getattr(driver, "closed", False) or getattr(driver, "broken", False))
            if lost:
                self._discard()
            raise sa.exc.DBAPIError.instance(
                sql,
                parameters,
                exc,
                self._dbapi_error,
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
