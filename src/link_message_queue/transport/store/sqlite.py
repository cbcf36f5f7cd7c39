"""SQLite's message SQL. The hot statements (publish, claim, take, ack) are each written so that
SQLite's one write lock is held only while SQLite itself works; the others are ``common``'s.

Why: in a ``BEGIN IMMEDIATE … COMMIT`` run through SQLAlchemy the lock is held across Python
code, and every sqlite3 call in it gives up the GIL and takes it back. In a process whose other
threads are busy (Flower's web loop, a worker's pool threads) each take-back can wait for the
interpreter's switch interval (5 ms) while every other process waits for the lock. Measured on
a Flower receiving a worker's events: its takes held the lock 0.5 ms at the median and up to
77 ms. A single autocommit statement takes the lock, writes and commits within one
``sqlite3_step``, with the GIL released.

So a claim is a read (no lock under WAL: an idle poll never touches the write lock), one
``UPDATE`` that leases the rows still ready with a lease time no other claim of this owner
uses, and, only when another consumer took some of them meanwhile, a read of the rows that
carry that mark. A no-ack take is a claim followed by one ``DELETE``.

Times are this host's clock (``time.time()``): SQLite serves the processes of one host only.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from ...db import QueueTables
from ...db.dialects import chunked, sqlite_variable_limit
from .. import states
from ..put_connection import PutConnection
from ..rows import INSERT_COLUMNS, ClaimedRow, PendingRow
from .common import INSERT_COLUMNS_SQL, OTHER_PARAMETERS, CommonMessages, in_delivery_order
from .connections import Connections

# One INSERT carries at most this many rows (7 parameters each), fewer where the connection's
# variable limit is lower (SQLite >= 3.32 allows 32,766, older ones 999: 142 rows).
_ROWS_PER_INSERT = 1000
# How long a taken (no-ack) row stays leased before its DELETE: only a process that dies in
# between leaves it, and then it is delivered again.
_TAKE_LEASE_S = 60.0

Row = tuple[int, str, int, int]  # id, payload, delivery_count, priority


class SqliteMessages(CommonMessages):
    """``MessageSQL`` on SQLite. The hot statements (put, claim, take, ack) run on the engine's
    raw sqlite3 connection in autocommit (see the module docstring for why); the others are
    ``CommonMessages``'. Times are this host's ``time.time()``; sqlite3 errors come out as
    SQLAlchemy's."""

    def __init__(self, connections: Connections, tables: QueueTables) -> None:
        super().__init__(connections, tables)
        self._engine = connections.engine
        self._table = table = self.message.name
        # The one definition of "ready" (states), with the named parameter :now.
        self._is_ready = states.ready_sql(
            self.message, sqlite.dialect(paramstyle="named"), sa.bindparam("now")
        )
        self._ready_sql = (
            f"SELECT id, payload, delivery_count, priority FROM {table} "
            f"WHERE queue = :queue AND {self._is_ready} ORDER BY priority DESC, id LIMIT :limit"
        )
        self._put_sql = f"INSERT INTO {table} ({INSERT_COLUMNS_SQL}) VALUES (?, ?, ?, ?, ?, ?, 0)"
        self._take_owner = f"no-ack:{uuid.uuid4().hex}"
        self._last_mark = 0.0
        self._mark_lock = threading.Lock()

    _publishes_held = True

    def put(self, queue: str, payload: str, priority: int, ttl_s: float | None) -> None:
        """See ``MessageSQL.put``: on the process's shared held sqlite3 connection where the
        store holds connections and no other thread is using it."""
        row = PendingRow(queue, payload, priority, ttl_s)
        if not self._put_held(row):
            self._execute(*self._put_statement(row))

    def _new_put_connection(self) -> PutConnection:
        # A held sqlite3 connection, the statement not prepared.
        return PutConnection(self._engine, self._put_statement, prepare=False)

    def _put_statement(self, row: PendingRow) -> tuple[str, tuple[Any, ...]]:
        """The INSERT of one message (SQL, qmark parameters), timed now."""
        now = time.time()
        return self._put_sql, (
            row.queue,
            row.priority,
            row.payload,
            now,
            now,
            _expires_at(now, row.ttl_s),
        )

    def _put_many_alone(self, rows: Sequence[PendingRow]) -> None:
        # One statement, or one transaction when there are more than fit in one, holding the
        # write lock only while SQLite works.
        with self._connection() as db:
            statements = self._insert_statements(rows, sqlite_variable_limit(db))
            if len(statements) == 1:
                db.execute(*statements[0])
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, parameters in statements:
                    db.execute(sql, parameters)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _insert_many(self, connection: sa.Connection, rows: Sequence[PendingRow]) -> None:
        variables = sqlite_variable_limit(connection.connection.driver_connection)  # type: ignore[arg-type]
        for sql, parameters in self._insert_statements(rows, variables):
            connection.exec_driver_sql(sql, parameters)

    def _insert_statements(
        self, rows: Sequence[PendingRow], variables: int
    ) -> list[tuple[str, tuple[Any, ...]]]:
        """The multi-row INSERTs (SQL, qmark parameters) that write ``rows`` in order, all
        timed now, each with at most ``variables`` parameters (the connection's limit)."""
        per_insert = min(_ROWS_PER_INSERT, max(1, variables // len(INSERT_COLUMNS)))
        now = time.time()
        return [self._insert_chunk(chunk, now) for chunk in chunked(rows, per_insert)]

    def claim(
        self, queue: str, owner: str, lease_s: float, limit: int, acked: Sequence[int] = ()
    ) -> list[ClaimedRow]:
        """See ``MessageSQL.claim``: ``acked`` deleted just before."""
        with self._connection() as db:
            if acked:
                self._delete(db, acked)
            return in_delivery_order(self._lease(db, queue, owner, lease_s, limit))

    def take(self, queue: str, limit: int, acked: Sequence[int] = ()) -> list[ClaimedRow]:
        """See ``MessageSQL.take``: a claim, then one DELETE."""
        with self._connection() as db:
            if acked:
                self._delete(db, acked)
            rows = self._lease(db, queue, self._take_owner, _TAKE_LEASE_S, limit)
            if rows:
                self._delete(db, [row[0] for row in rows])
            return in_delivery_order(rows)

    def ack(self, ids: Sequence[int]) -> int:
        """See ``MessageSQL.ack``."""
        if not ids:
            return 0
        with self._connection() as db:
            return self._delete(db, ids)

    # -- statements ------------------------------------------------------------------------

    def _lease(
        self, db: sqlite3.Connection, queue: str, owner: str, lease_s: float, limit: int
    ) -> list[Row]:
        now = time.time()
        # The UPDATE names each id: a claim leases no more than one statement can name.
        limit = min(limit, sqlite_variable_limit(db) - OTHER_PARAMETERS)
        ready: list[Row] = db.execute(
            self._ready_sql, {"queue": queue, "now": now, "limit": limit}
        ).fetchall()
        if not ready:
            return []
        ids = [row[0] for row in ready]
        mark = self._unique_mark(now + lease_s)
        id_names = [f"id{index}" for index in range(len(ids))]
        leased = db.execute(
            f"UPDATE {self._table} SET visible_at = :mark, lease_owner = :owner, "
            "delivery_count = delivery_count + 1 "
            f"WHERE id IN ({', '.join(':' + name for name in id_names)}) AND {self._is_ready}",
            {"mark": mark, "owner": owner, "now": now, **dict(zip(id_names, ids, strict=True))},
        ).rowcount
        if leased == len(ids):
            return [(id_, payload, count + 1, priority) for id_, payload, count, priority in ready]
        if leased == 0:
            return []
        # Another consumer leased some of them between the read and the update: ours are the
        # rows that carry this claim's mark.
        placeholders = ",".join("?" * len(ids))
        ours: list[Row] = db.execute(
            f"SELECT id, payload, delivery_count, priority FROM {self._table} "
            f"WHERE id IN ({placeholders}) AND lease_owner = ? AND visible_at = ?",
            (*ids, owner, mark),
        ).fetchall()
        return ours

    def _unique_mark(self, lease_until: float) -> float:
        # Two claims of one owner never share a lease time, so the time marks a claim's rows.
        with self._mark_lock:
            mark = max(lease_until, math.nextafter(self._last_mark, math.inf))
            self._last_mark = mark
            return mark

    def _delete(self, db: sqlite3.Connection, ids: Sequence[int]) -> int:
        # Autocommit, a statement per chunk within the connection's variable limit: an ack
        # needs no atomicity (each row deleted is done with).
        deleted = 0
        for chunk in chunked(ids, sqlite_variable_limit(db)):
            placeholders = ",".join("?" * len(chunk))
            deleted += db.execute(
                f"DELETE FROM {self._table} WHERE id IN ({placeholders})", tuple(chunk)
            ).rowcount
        return deleted

    def _insert_chunk(self, rows: Sequence[PendingRow], now: float) -> tuple[str, tuple[Any, ...]]:
        placeholders = "(" + ", ".join("?" * len(INSERT_COLUMNS)) + ")"
        values = ",".join([placeholders] * len(rows))
        parameters: list[Any] = []
        for row in rows:
            expires_at = _expires_at(now, row.ttl_s)
            parameters += (row.queue, row.priority, row.payload, now, now, expires_at, 0)
        return f"INSERT INTO {self._table} ({INSERT_COLUMNS_SQL}) VALUES {values}", tuple(
            parameters
        )

    def _execute(self, sql: str, parameters: tuple[Any, ...]) -> None:
        with self._connection() as db:
            db.execute(sql, parameters)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """The pool's sqlite3 connection, in autocommit mode (``isolation_level`` None, set on
        connect); sqlite3 errors come out as SQLAlchemy's, as from every other statement."""
        pooled = self._engine.raw_connection()
        try:
            yield pooled.driver_connection  # type: ignore[misc]
        except sqlite3.Error as exc:
            raise sa.exc.DBAPIError.instance(
                None, None, exc, sqlite3.Error, dialect=self._engine.dialect
            ) from exc
        finally:
            pooled.close()


def _expires_at(now: float, ttl_s: float | None) -> float | None:
    return None if ttl_s is None else now + ttl_s
