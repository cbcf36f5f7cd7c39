"""PostgreSQL's message SQL. Every operation is one statement, run in autocommit (one round trip),
with the server's clock read inside it (``clock.POSTGRESQL_NOW_SQL``: no host time is bound).
A claim locks its rows with ``FOR UPDATE SKIP LOCKED``, so consumers never wait for each
other, and deletes the buffered acks in the same statement. A publish's ``pg_notify`` wakes the
queue's listeners on commit. psycopg 3 also gets server-side prepared publishes, claims and
takes on the process's shared held connections (``put_connection``, ``claim_connection``) and
COPY batches; other drivers the portable statements. ``publish_synchronous_commit`` (see
``transport.options``) sets ``synchronous_commit`` for single publishes (``put``) only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from ...db import QueueTables
from ...db.clock import POSTGRESQL_NOW_SQL
from .. import states
from ..claim_connection import ClaimConnection, claim_connection_for, let_go
from ..options import SYNCHRONOUS_COMMIT_VALUES
from ..put_connection import PutConnection
from ..rows import ClaimedRow, PendingRow
from .common import INSERT_COLUMNS_SQL, CommonMessages, in_delivery_order
from .connections import Connections


def _set_local_synchronous_commit(value: str) -> str:
    """``SET LOCAL synchronous_commit`` to ``value``, one of
    ``options.SYNCHRONOUS_COMMIT_VALUES`` (checked: SET takes no parameters, so the value is
    spelled into the SQL). Raises ``ValueError`` for any other."""
    if value not in SYNCHRONOUS_COMMIT_VALUES:
        raise ValueError(f"not a synchronous_commit value: {value!r}")
    return f"SET LOCAL synchronous_commit TO {value}"


class PostgresMessages(CommonMessages):
    """``MessageSQL`` on PostgreSQL (see the module docstring)."""

    def __init__(self, connections: Connections, tables: QueueTables) -> None:
        super().__init__(connections, tables)
        self._psycopg = connections.engine.dialect.driver == "psycopg"
        self._publishes_held = self._psycopg
        now = POSTGRESQL_NOW_SQL
        table = self.message.name
        # One round trip: the row and its wake-up signal; NOTIFY fires on commit. In the
        # driver's own parameter style: a channel runs it on its raw connection.
        self._put_sql = (
            f"WITH inserted AS (INSERT INTO {table} ({INSERT_COLUMNS_SQL}) "
            f"VALUES (%(queue)s, %(priority)s, %(payload)s, {now}, {now}, "
            f"{now} + CAST(%(ttl_s)s AS DOUBLE PRECISION), 0) "
            "RETURNING id) SELECT pg_notify(%(channel)s, %(queue)s) FROM inserted"
        )
        # A batch (COPY) opens with one statement that reads the server's clock for the
        # rows and signals their queues (NOTIFY is delivered on commit, after the rows).
        self._copy_sql = f"COPY {table} ({INSERT_COLUMNS_SQL}) FROM STDIN"
        self._batch_clock_sql = (
            f"SELECT {now}, (SELECT count(pg_notify(%s, q)) FROM unnest(CAST(%s AS TEXT[])) q)"
        )
        is_ready = states.ready_sql(
            self.message, connections.engine.dialect, sa.literal_column(now)
        )
        # Buffered acks are deleted and the next ready rows locked in the same statement.
        acked_and_ready = (
            f"WITH acked AS (DELETE FROM {table} WHERE id = ANY(CAST(:acked AS BIGINT[]))), "
            f"ready AS (SELECT id FROM {table} WHERE queue = :queue AND {is_ready} "
            "ORDER BY priority DESC, id LIMIT :limit FOR UPDATE SKIP LOCKED) "
        )
        self._claim_sql = sa.text(
            acked_and_ready
            + f"UPDATE {table} AS m SET visible_at = {now} + :lease_s, lease_owner = :owner, "
            "delivery_count = m.delivery_count + 1 FROM ready WHERE m.id = ready.id "
            "RETURNING m.id, m.payload, m.delivery_count, m.priority"
        )
        self._take_sql = sa.text(
            acked_and_ready + f"DELETE FROM {table} AS m USING ready WHERE m.id = ready.id "
            "RETURNING m.id, m.payload, m.delivery_count + 1 AS delivery_count, m.priority"
        )
        # psycopg: claims and takes on the process's shared held raw connection
        # (claim_connection), held from the first claim until close, their SQL in the
        # driver's parameter style.
        self._holds_claims = self._psycopg and connections.hold_connections
        self._claims: ClaimConnection | None = None
        self._raw_claim_sql = str(self._claim_sql.compile(dialect=connections.engine.dialect))
        self._raw_take_sql = str(self._take_sql.compile(dialect=connections.engine.dialect))

    def put(self, queue: str, payload: str, priority: int, ttl_s: float | None) -> None:
        """See ``MessageSQL.put``: one statement, the row and its NOTIFY (with psycopg on the
        shared held connection, server-side prepared, where the store holds connections)."""
        row = PendingRow(queue, payload, priority, ttl_s)
        if self._put_held(row):
            return
        synchronous_commit = self._db.publish_synchronous_commit
        if synchronous_commit is None:
            with self._db.single.begin() as own:
                own.exec_driver_sql(*self._put_statement(row))
            return
        # A transaction of its own (BEGIN, SET LOCAL, the statement, COMMIT): SET LOCAL ends
        # with it, so the pooled connection goes back with the server's setting.
        with self._db.engine.begin() as own:
            own.exec_driver_sql(_set_local_synchronous_commit(synchronous_commit))
            own.exec_driver_sql(*self._put_statement(row))

    def _new_put_connection(self) -> PutConnection:
        synchronous_commit = self._db.publish_synchronous_commit
        settings = {} if synchronous_commit is None else {"synchronous_commit": synchronous_commit}
        return PutConnection(self._db.single, self._put_statement, prepare=True, settings=settings)

    def _put_statement(self, row: PendingRow) -> tuple[str, dict[str, Any]]:
        parameters = {
            "queue": row.queue,
            "priority": row.priority,
            "payload": row.payload,
            "ttl_s": row.ttl_s,
            "channel": self.tables.notify_channel,
        }
        return self._put_sql, parameters

    def _ids_in(
        self, connection: sa.Connection, ids: Sequence[int]
    ) -> Iterator[sa.ColumnElement[bool]]:
        # One array parameter however many ids (psycopg refuses statements with more than
        # 65,535 parameters: a worker holding 62,439 prefetched ETA tasks could not renew).
        array = sa.cast(
            sa.bindparam(None, list(ids), type_=ARRAY(sa.BigInteger)), ARRAY(sa.BigInteger)
        )
        yield self.message.c.id == sa.any_(array)

    def _insert_many(self, connection: sa.Connection, rows: Sequence[PendingRow]) -> None:
        # One row: put's one statement; psycopg: COPY; other drivers: executemany, then NOTIFY.
        if len(rows) == 1:
            connection.exec_driver_sql(*self._put_statement(rows[0]))
        elif self._psycopg:
            self._copy_many(connection, rows)
        else:
            connection.execute(self._insert_rows(), [self._insert_parameters(row) for row in rows])
            for queue in sorted({row.queue for row in rows}):
                connection.execute(sa.select(sa.func.pg_notify(self.tables.notify_channel, queue)))

    def _copy_many(self, connection: sa.Connection, rows: Sequence[PendingRow]) -> None:
        # COPY costs a third of the CPU of an executemany (measured: 0.21 against 0.72 ms for
        # 30 rows) and a tenth of an INSERT … SELECT FROM unnest(…) of the same rows (psycopg
        # adapts each list item in Python), and this runs in the publisher's process, under
        # its GIL. COPY takes values, not expressions: the server's now is read by the
        # batch's first statement, which also carries the wake-up signals. It runs through
        # SQLAlchemy, so a caller's connection begins its transaction if it had none.
        queues = sorted({row.queue for row in rows})
        clock = connection.exec_driver_sql(
            self._batch_clock_sql, (self.tables.notify_channel, queues)
        )
        now = float(clock.scalar_one())
        driver: Any = connection.connection.driver_connection
        with driver.cursor() as cursor, cursor.copy(self._copy_sql) as copy:
            for row in rows:
                expires_at = None if row.ttl_s is None else now + row.ttl_s
                copy.write_row((row.queue, row.priority, row.payload, now, now, expires_at, 0))

    def claim(
        self, queue: str, owner: str, lease_s: float, limit: int, acked: Sequence[int] = ()
    ) -> list[ClaimedRow]:
        """See ``MessageSQL.claim``: one statement, the acks deleted in it."""
        parameters = {
            "acked": list(acked),
            "queue": queue,
            "limit": limit,
            "lease_s": lease_s,
            "owner": owner,
        }
        return in_delivery_order(self._fetch(self._claim_sql, self._raw_claim_sql, parameters))

    def take(self, queue: str, limit: int, acked: Sequence[int] = ()) -> list[ClaimedRow]:
        """See ``MessageSQL.take``: one statement, the acks deleted in it."""
        parameters = {"acked": list(acked), "queue": queue, "limit": limit}
        return in_delivery_order(self._fetch(self._take_sql, self._raw_take_sql, parameters))

    def _fetch(
        self, statement: sa.TextClause, raw_sql: str, parameters: dict[str, Any]
    ) -> Sequence[Any]:
        """Rows of a claim or take: on the held claim connection, or through SQLAlchemy where
        there is none or another thread is using it."""
        claims = self._claims
        if claims is None and self._holds_claims:
            claims = self._hold_claims()
        rows = None if claims is None else claims.fetch(raw_sql, parameters)
        if rows is not None:
            return rows
        with self._db.single.connect() as connection:
            return connection.execute(statement, parameters).all()

    def _hold_claims(self) -> ClaimConnection:
        with self._holding_lock:
            if self._claims is None:
                self._claims = claim_connection_for(self._db.engine, self._db.single)
            return self._claims

    def close(self) -> None:
        """See ``MessageSQL.close``: also lets go of the shared claim connection."""
        try:
            with self._holding_lock:
                claims, self._claims = self._claims, None
            if claims is not None:
                let_go(self._db.engine, claims)
        finally:
            super().close()
