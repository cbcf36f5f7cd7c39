"""A consumer's own connection for its claims on PostgreSQL with psycopg: checked out of the
pool once, in autocommit, each statement prepared on the server and run through libpq (as a
channel's publishes: ``put_connection``), its text results read directly.

Why: a worker's consuming process claims once per task (the acks ride along in the same
statement). Through SQLAlchemy each claim paid a pool checkout and check-in, autocommit
switched on and off, a compiled-statement lookup and a result object: measured 0.38 ms of
CPU per claim against 0.10 ms on a held connection with the same prepared statement run by
psycopg's cursor, in the one process that feeds every pool process (issue 18); libpq's call
spares psycopg's query and row machinery too.

A process holds at most one per engine (``claim_connection_for``), shared by every store that
holds connections (each kombu connection's) and given back to the pool when the last of them
lets go of it (``let_go``): Flower, say, opens a kombu connection per thread for its
remote-control calls, and one held database connection each ran the engine's pool dry (its API
hung); and one kombu connection closing must not take it from the others.

One thread at a time uses the connection; a claim that finds it busy (another thread of the
same process claiming) gets ``None`` and goes the SQLAlchemy way. A lost connection is
discarded (the next claim checks out another) and its error comes out as SQLAlchemy's, so
kombu treats it as a connection error. A forked child never touches the connection it
inherited: it neither closes it nor returns it to the pool (that would talk on its parent's
socket), and starts with no shared claim connection (its first holder makes one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from .put_connection import PutConnection, hold_shared, let_go_shared


class ClaimConnection(PutConnection):
    """Runs prepared statements that return rows on one connection held from ``engine``
    (PostgreSQL with psycopg), whose connections must be in autocommit (each statement commits
    alone); SQLAlchemy switches autocommit off again when the connection goes back. Holding,
    losing and forking as ``PutConnection``."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine, _no_put, prepare=True)

    def fetch(
        self, sql: str, parameters: Mapping[str, Any]
    ) -> list[tuple[int, str, int, int]] | None:
        """Run ``sql`` (psycopg's ``%(name)s`` style; a list parameter is sent as an array) and
        return its rows, committed: ``(id, payload, delivery_count, priority)`` each, in the
        order the statement returns them. None when another thread is using the connection.
        Raises SQLAlchemy's ``DBAPIError`` subclasses (``OperationalError`` for a lost
        connection)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            cursor = self._cursor if self._held is not None else self._open()
            text = {
                name: "{" + ",".join(map(str, value)) + "}" if isinstance(value, list) else value
                for name, value in parameters.items()
            }
            try:
                result = self._execute_prepared(cursor.connection, sql, text)
                encoding = self._prepared[sql][2]
                value = result.get_value
                rows = [
                    (
                        int(value(row, 0)),
                        value(row, 1).decode(encoding),
                        int(value(row, 2)),
                        int(value(row, 3)),
                    )
                    for row in range(result.ntuples)
                ]
            except self._dbapi_error as exc:
                raise self._failed(cursor, sql, dict(parameters), exc) from exc
            except BaseException:
                # Interrupted mid-statement: the connection's state is unknown.
                self._discard()
                raise
            return rows
        finally:
            self._lock.release()


def claim_connection_for(engine: sa.Engine, autocommit: sa.Engine) -> ClaimConnection:
    """This process's one ``ClaimConnection`` for ``engine`` (made on first use, running on
    ``autocommit``, ``engine`` in autocommit), with one more user: pair each call with one
    ``let_go``. The connection goes back to the pool when its last user lets go."""
    return hold_shared(_key(engine), lambda: ClaimConnection(autocommit))


def let_go(engine: sa.Engine, claims: ClaimConnection) -> None:
    """One user of ``claims`` (``claim_connection_for(engine, …)``) fewer; see
    ``put_connection.let_go_shared``."""
    let_go_shared(_key(engine), claims)


def _key(engine: sa.Engine) -> tuple[str, sa.Engine]:
    return ("claim", engine)


def _no_put(row: Any) -> tuple[str, Any]:
    raise TypeError("a ClaimConnection runs claims (fetch), not publishes")
