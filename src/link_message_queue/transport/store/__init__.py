"""The message store: the SQL statements the transport runs (SQLite's hot ones: sqlite_messages).

Semantics (leases, redelivery, priorities) are decided by the channel; this module only knows
how to say them in SQL on each dialect. Claims lock rows with ``FOR UPDATE SKIP LOCKED`` where
the database has it (PostgreSQL, MySQL 8, MariaDB 10.6), so consumers never wait for each other;
SQLite's hot statements (publish, claim, take, ack) live in ``sqlite_messages``, written so
that its one write lock is held only while SQLite works.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from ...db import SECONDS, QueueTables, read_only
from ...db.clock import POSTGRESQL_NOW_SQL, database_now
from .. import states
from ..claim_connection import ClaimConnection
from ..errors import TransportError
from ..put_connection import PutConnection
from ..rows import ClaimedRow, PendingRow
from ..transactional import writing_in
from .sqlite import SqliteMessages

# Rows touched per statement when deleting expired messages: bounds the cleaner's lock time.
_EXPIRED_BATCH = 1000
# MySQL/MariaDB: deadlock (1213) and lock wait time-out (1205) end a claim that may be retried.
_DEADLOCK_CODES = frozenset({1213, 1205})
_DEADLOCK_RETRIES = 3


class MessageStore:
    """The SQL the transport runs on ``engine`` against ``tables``, per dialect (PostgreSQL, SQLite,
    MySQL/MariaDB). Times are Unix seconds (floats) from the database's clock (``db.clock``).
    Methods that take an optional ``connection`` run in the caller's transaction when given one,
    else in their own. Database errors propagate as ``sqlalchemy.exc.SQLAlchemyError``.

    ``hold_claim_connection``: on PostgreSQL with psycopg, claims and takes run on one pool
    connection the store keeps checked out until ``close()`` (``claim_connection``). Only an
    owner that closes the store should ask for it (the kombu ``Transport`` does, in
    ``close_connection``): a store that is dropped unclosed keeps a pool slot until it is
    garbage-collected."""

    def __init__(
        self, engine: sa.Engine, tables: QueueTables, *, hold_claim_connection: bool = False
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.dialect = engine.dialect.name
        message = tables.message
        # On PostgreSQL every operation is one statement, so it runs in autocommit: one round
        # trip (statement and commit together) instead of three (BEGIN, statement, COMMIT).
        # SQLite keeps explicit BEGIN IMMEDIATE transactions: there is no network to save.
        self._single: sa.Engine = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "postgresql"
            else engine
        )
        self.reader = read_only(engine)
        # SQLite: the hot statements on the raw connection, holding the write lock only inside
        # SQLite (see sqlite_messages).
        self._sqlite = SqliteMessages(engine, message) if self.dialect == "sqlite" else None
        if self.dialect == "postgresql":
            # Times come from the server's clock inside each statement (see clock): no host
            # time is bound, and no round trip reads the clock.
            now = POSTGRESQL_NOW_SQL
            table = message.name
            columns = "queue, priority, payload, created_at, visible_at, expires_at, delivery_count"
            # One round trip: the row and its wake-up signal; NOTIFY fires on commit. In the
            # driver's own parameter style: a channel runs it on its raw connection.
            self._put_sql: str | None = (
                f"WITH inserted AS (INSERT INTO {table} ({columns}) "
                f"VALUES (%(queue)s, %(priority)s, %(payload)s, {now}, {now}, "
                f"{now} + CAST(%(ttl_s)s AS DOUBLE PRECISION), 0) "
                "RETURNING id) SELECT pg_notify(%(channel)s, %(queue)s) FROM inserted"
            )
            # A batch (COPY) opens with one statement that reads the server's clock for the
            # rows and signals their queues (NOTIFY is delivered on commit, after the rows).
            self._copy_sql = f"COPY {table} ({columns}) FROM STDIN"
            self._batch_clock_sql = (
                f"SELECT {now}, (SELECT count(pg_notify(%s, q)) FROM unnest(CAST(%s AS TEXT[])) q)"
            )
            is_ready = states.ready_sql(message, engine.dialect, sa.literal_column(now))
            # Buffered acks are deleted and the next ready rows locked in the same statement.
            acked_and_ready = (
                f"WITH acked AS (DELETE FROM {table} WHERE id = ANY(CAST(:acked AS BIGINT[]))), "
                f"ready AS (SELECT id FROM {table} WHERE queue = :queue AND {is_ready} "
                "ORDER BY priority DESC, id LIMIT :limit FOR UPDATE SKIP LOCKED) "
            )
            self._claim_sql: sa.TextClause | None = sa.text(
                acked_and_ready
                + f"UPDATE {table} AS m SET visible_at = {now} + :lease_s, lease_owner = :owner, "
                "delivery_count = m.delivery_count + 1 FROM ready WHERE m.id = ready.id "
                "RETURNING m.id, m.payload, m.delivery_count, m.priority"
            )
            self._take_sql: sa.TextClause | None = sa.text(
                acked_and_ready + f"DELETE FROM {table} AS m USING ready WHERE m.id = ready.id "
                "RETURNING m.id, m.payload, m.delivery_count + 1 AS delivery_count, m.priority"
            )
        else:
            self._put_sql = None
            self._copy_sql = self._batch_clock_sql = ""
            self._claim_sql = None
            self._take_sql = None
        # PostgreSQL with psycopg: claims and takes on a held raw connection (claim_connection),
        # their SQL in the driver's parameter style.
        self._claims: ClaimConnection | None = None
        self._raw_claim_sql = self._raw_take_sql = ""
        if (
            hold_claim_connection
            and self._claim_sql is not None
            and self._take_sql is not None
            and engine.dialect.driver == "psycopg"
        ):
            self._claims = ClaimConnection(self._single)
            self._raw_claim_sql = str(self._claim_sql.compile(dialect=engine.dialect))
            self._raw_take_sql = str(self._take_sql.compile(dialect=engine.dialect))

    def now(self) -> sa.ColumnElement[float]:
        """The database's now, for one statement (see ``clock.database_now``)."""
        return database_now(self.dialect)

    # -- queues ----------------------------------------------------------------------------

    def declare_queue(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        connection: sa.Connection | None = None,
        *,
        expires_s: float | None = None,
        message_ttl_s: float | None = None,
    ) -> None:
        """Create the queue row if it is missing; never fails on a concurrent declare (and so
        never aborts a caller's PostgreSQL transaction)."""
        now = self.now()
        values = {
            "name": name,
            "created_at": now,
            "arguments": json.dumps(arguments) if arguments else None,
            "expires_s": expires_s,
            "message_ttl_s": message_ttl_s,
            "last_used_at": now,
        }
        statement = self._insert_ignoring_duplicates(self.tables.queue, values)
        self._execute(statement, connection)

    def queue_message_ttl_s(self, name: str) -> float | None:
        """The queue's per-message time-to-live in seconds (AMQP ``x-message-ttl``, declared in ms),
        or None if it has none or the queue does not exist."""
        queue = self.tables.queue
        return self._scalar(sa.select(queue.c.message_ttl_s).where(queue.c.name == name), None)  # type: ignore[no-any-return]

    def heartbeat(self, owner: str, queues: Sequence[str]) -> None:
        """A live consumer: its queues do not expire, and it is listed (with them) as alive."""
        now = self.now()
        queue, consumer = self.tables.queue, self.tables.consumer
        with self._single.begin() as connection:
            if queues:
                connection.execute(
                    sa.update(queue).where(queue.c.name.in_(queues)).values(last_used_at=now)
                )
            connection.execute(
                self._upsert(
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
        with self._single.begin() as connection:
            connection.execute(sa.delete(consumer).where(consumer.c.owner == owner))

    def delete_stale_consumers(self, unseen_for_s: float) -> int:
        """Forget consumers that stopped saying they are alive (killed processes)."""
        consumer = self.tables.consumer
        with self._single.begin() as connection:
            return connection.execute(
                sa.delete(consumer).where(consumer.c.last_seen_at < self.now() - unseen_for_s)
            ).rowcount

    def set_gauges(self, values: dict[str, float]) -> None:
        """Upsert the gauge ``values`` (name -> float), each stamped with the database's time."""
        with self._single.begin() as connection:
            for name, value in sorted(values.items()):
                now = self.now()
                connection.execute(
                    self._upsert(
                        self.tables.gauge,
                        {"name": name, "value": float(value), "updated_at": now},
                        update=("value", "updated_at"),
                    )
                )

    def delete_expired_queues(self) -> list[str]:
        """Drop queues unused for longer than their ``x-expires``, with their messages and
        bindings (at most a bounded batch per call)."""
        queue = self.tables.queue
        now = self.now()
        with self.engine.begin() as connection:
            names = list(
                connection.execute(
                    sa.select(queue.c.name)
                    .where(
                        queue.c.expires_s.isnot(None),
                        queue.c.last_used_at + queue.c.expires_s < now,
                    )
                    .limit(_EXPIRED_BATCH)
                ).scalars()
            )
            if names:
                self._delete_queues(connection, names)
        return names

    # -- bindings --------------------------------------------------------------------------

    def bind(
        self,
        exchange: str,
        *,
        exchange_type: str,
        routing_key: str,
        pattern: str,
        queue: str,
        connection: sa.Connection | None = None,
    ) -> None:
        """Record a binding of ``queue`` to ``exchange`` (kombu's virtual exchange table:
        ``exchange_type``, ``routing_key``, ``pattern``); an existing identical binding is left as
        it is."""
        values = {
            "exchange": exchange,
            "queue": queue,
            "routing_key": routing_key,
            "exchange_type": exchange_type,
            "pattern": pattern,
        }
        self._execute(self._insert_ignoring_duplicates(self.tables.binding, values), connection)

    def unbind(self, exchange: str, queue: str, routing_key: str) -> None:
        """Delete the binding of ``queue`` to ``exchange`` with ``routing_key``; no error if there
        is none."""
        binding = self.tables.binding
        self._execute(
            sa.delete(binding).where(
                binding.c.exchange == exchange,
                binding.c.queue == queue,
                binding.c.routing_key == routing_key,
            ),
            None,
        )

    def bindings(
        self, exchange: str, connection: sa.Connection | None = None
    ) -> list[tuple[str, str, str, str]]:
        """(exchange type, routing key, pattern, queue) of every binding of ``exchange``."""
        binding = self.tables.binding
        statement = sa.select(
            binding.c.exchange_type, binding.c.routing_key, binding.c.pattern, binding.c.queue
        ).where(binding.c.exchange == exchange)
        if connection is not None:
            return [tuple(row) for row in connection.execute(statement)]
        with self.reader.connect() as own:
            return [tuple(row) for row in own.execute(statement)]

    def queue_names(self) -> list[str]:
        """The names of all declared queues, sorted."""
        queue = self.tables.queue
        with self.reader.connect() as connection:
            return list(
                connection.execute(sa.select(queue.c.name).order_by(queue.c.name)).scalars()
            )

    def has_queue(self, name: str, connection: sa.Connection | None = None) -> bool:
        """Whether a queue called ``name`` is declared (read on ``connection`` if given)."""
        queue = self.tables.queue
        statement = sa.select(queue.c.name).where(queue.c.name == name)
        return self._scalar(statement, connection) is not None

    def delete_queue(self, name: str) -> None:
        """Delete the queue ``name`` with its messages and bindings, in one transaction."""
        with self.engine.begin() as connection:
            self._delete_queues(connection, [name])

    def _delete_queues(self, connection: sa.Connection, names: Sequence[str]) -> None:
        tables = self.tables
        connection.execute(sa.delete(tables.message).where(tables.message.c.queue.in_(names)))
        connection.execute(sa.delete(tables.binding).where(tables.binding.c.queue.in_(names)))
        connection.execute(sa.delete(tables.queue).where(tables.queue.c.name.in_(names)))

    # -- messages --------------------------------------------------------------------------

    def put(self, queue: str, payload: str, priority: int, ttl_s: float | None) -> None:
        """Insert one message, committed and visible at once; it expires ``ttl_s`` seconds
        from now (by the database's clock), or never if None. (A channel publishes through
        its ``put_connection`` where there is one; messages published inside a caller's
        transaction go through ``put_many``.)"""
        row = PendingRow(queue, payload, priority, ttl_s)
        if self._put_sql is not None:
            with self._single.begin() as own:
                own.exec_driver_sql(*self._put_statement(row))
        elif self._sqlite is not None:
            self._sqlite.put(queue, payload, priority, ttl_s)
        else:
            self._execute(self._insert_rows(), None, self._insert_parameters(row))

    def put_connection(self) -> PutConnection | None:
        """A connection for one channel's publishes, to hold until the channel closes
        (SQLite, and PostgreSQL with psycopg); None where ``put`` is the way."""
        if self._sqlite is not None:
            return PutConnection(self.engine, self._sqlite.put_statement, prepare=False)
        if self._put_sql is None or self.engine.dialect.driver != "psycopg":
            return None
        return PutConnection(self._single, self._put_statement, prepare=True)

    def _put_statement(self, row: PendingRow) -> tuple[str, dict[str, Any]]:
        assert self._put_sql is not None
        parameters = {
            "queue": row.queue,
            "priority": row.priority,
            "payload": row.payload,
            "ttl_s": row.ttl_s,
            "channel": self.tables.notify_channel,
        }
        return self._put_sql, parameters

    def _insert_rows(self) -> sa.Insert:
        """INSERT of new messages timed by the database: parameters from
        ``_insert_parameters``."""
        now = self.now()
        return sa.insert(self.tables.message).values(
            created_at=now,
            visible_at=now,
            expires_at=now + sa.bindparam("ttl_s", type_=SECONDS),
            delivery_count=0,
        )

    @staticmethod
    def _insert_parameters(row: PendingRow) -> dict[str, Any]:
        return {
            "queue": row.queue,
            "priority": row.priority,
            "payload": row.payload,
            "ttl_s": row.ttl_s,
        }

    def put_many(self, rows: Sequence[PendingRow], connection: sa.Connection | None = None) -> None:
        """Insert ``rows`` in order, all or none, times by the database's clock at the insert:
        inside ``connection``'s transaction (visible when it commits), or in one transaction
        of their own. On PostgreSQL the batch signals each of its queues once (NOTIFY,
        delivered on commit); waking consumers elsewhere is the caller's part.

        PostgreSQL with psycopg writes the rows with one COPY, after one statement that
        reads the clock and signals the queues (a single row: ``put``'s one statement);
        SQLite with multi-row INSERTs (1000 rows each); other databases with one
        executemany."""
        if not rows:
            return
        if connection is not None:
            with writing_in(connection):
                self._insert_many(connection, rows)
        elif self._sqlite is not None:
            # SQLite's write lock held only while SQLite works (see sqlite_messages).
            self._sqlite.put_many(rows)
        else:
            # A single row is one statement: autocommit spares BEGIN and COMMIT.
            engine = self._single if len(rows) == 1 else self.engine
            with engine.begin() as own:
                self._insert_many(own, rows)

    def _insert_many(self, connection: sa.Connection, rows: Sequence[PendingRow]) -> None:
        if self._put_sql is not None and len(rows) == 1:
            connection.exec_driver_sql(*self._put_statement(rows[0]))
        elif self.dialect == "postgresql" and self.engine.dialect.driver == "psycopg":
            self._copy_many(connection, rows)
        elif self._sqlite is not None:
            for sql, parameters in self._sqlite.insert_statements(rows):
                connection.exec_driver_sql(sql, parameters)
        else:
            connection.execute(self._insert_rows(), [self._insert_parameters(row) for row in rows])
            if self.dialect == "postgresql":
                for queue in sorted({row.queue for row in rows}):
                    connection.execute(
                        sa.select(sa.func.pg_notify(self.tables.notify_channel, queue))
                    )

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
        """Lease up to ``limit`` ready messages of ``queue`` to ``owner``, highest priority
        first, FIFO within a priority; delete the ``acked`` messages with it (acks ride along
        with the next claim: in its statement on PostgreSQL, just before it on SQLite). The
        lease ends ``lease_s`` seconds from now by the database's clock."""
        rows: Sequence[Any] | None
        if self._claim_sql is not None:
            parameters = {
                "acked": list(acked),
                "queue": queue,
                "limit": limit,
                "lease_s": lease_s,
                "owner": owner,
            }
            rows = self._fetch_raw(self._raw_claim_sql, parameters)
            if rows is None:
                with self._single.connect() as connection:
                    rows = connection.execute(self._claim_sql, parameters).all()
        elif self._sqlite is not None:
            rows = self._sqlite.claim(queue, owner, lease_s, limit, acked)
        else:
            rows = self._claim_portable(
                queue, owner=owner, lease_s=lease_s, limit=limit, acked=acked
            )
        return _in_delivery_order(rows)

    def take(self, queue: str, limit: int, acked: Sequence[int] = ()) -> list[ClaimedRow]:
        """Delete and return up to ``limit`` ready messages of ``queue``, in claim order: a
        delivery without acknowledgement (AMQP's no_ack), in one statement where the database
        can; ``acked`` as in ``claim``."""
        rows: Sequence[Any] | None
        if self._take_sql is not None:
            parameters = {"acked": list(acked), "queue": queue, "limit": limit}
            rows = self._fetch_raw(self._raw_take_sql, parameters)
            if rows is None:
                with self._single.connect() as connection:
                    rows = connection.execute(self._take_sql, parameters).all()
        elif self._sqlite is not None:
            rows = self._sqlite.take(queue, limit, acked)
        else:
            claimed = self.claim(queue, "no-ack", 60.0, limit, acked)
            self.ack([row.id for row in claimed])
            return claimed
        return _in_delivery_order(rows)

    def _fetch_raw(self, sql: str, parameters: dict[str, Any]) -> Sequence[Any] | None:
        """Rows of ``sql`` on the held claim connection; None where there is none or another
        thread is using it (the caller then goes through SQLAlchemy)."""
        if self._claims is None:
            return None
        return self._claims.fetch(sql, parameters)

    def close(self) -> None:
        """Give back the connection held for claims (PostgreSQL with psycopg); the store stays
        usable (a later claim checks one out again)."""
        if self._claims is not None:
            self._claims.close()

    def _ready(self, queue: str, now: sa.ColumnElement[float], limit: int) -> sa.Select[tuple[int]]:
        """Ids of the next ``limit`` deliverable messages of ``queue``, in delivery order."""
        message = self.tables.message
        return (
            sa.select(message.c.id)
            .where(message.c.queue == queue, states.ready(message, now))
            .order_by(message.c.priority.desc(), message.c.id)
            .limit(limit)
        )

    def _claim_portable(
        self,
        queue: str,
        *,
        owner: str,
        lease_s: float,
        limit: int,
        acked: Sequence[int],
    ) -> Sequence[Any]:
        if self.dialect not in ("mysql", "mariadb"):
            raise TransportError(f"no claim statement for the {self.dialect} dialect")
        message = self.tables.message
        now = self.now()
        ready = self._ready(queue, now, limit).with_for_update(skip_locked=True)
        lease = {
            "visible_at": now + lease_s,
            "lease_owner": owner,
            "delivery_count": message.c.delivery_count + 1,
        }
        returned = (message.c.id, message.c.payload, message.c.delivery_count, message.c.priority)
        # InnoDB may still pick a claim as a deadlock victim: the claim is safe to repeat.
        for attempt in range(_DEADLOCK_RETRIES):
            try:
                return self._claim_mysql(ready, lease, returned, acked)
            except sa.exc.OperationalError as exc:
                code = getattr(exc.orig, "args", (None,))[0]
                if code not in _DEADLOCK_CODES or attempt == _DEADLOCK_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _claim_mysql(
        self,
        ready: sa.Select[tuple[int]],
        lease: dict[str, Any],
        returned: tuple[Any, ...],
        acked: Sequence[int],
    ) -> Sequence[Any]:
        # MySQL/MariaDB: no LIMIT in an IN subquery and no UPDATE … RETURNING.
        message = self.tables.message
        with self.engine.begin() as connection:
            if acked:
                connection.execute(sa.delete(message).where(message.c.id.in_(acked)))
            ids = list(connection.execute(ready).scalars())
            if not ids:
                return []
            connection.execute(sa.update(message).where(message.c.id.in_(ids)).values(**lease))
            return connection.execute(sa.select(*returned).where(message.c.id.in_(ids))).all()

    def ack(self, ids: Sequence[int]) -> int:
        """Delete acknowledged messages."""
        if not ids:
            return 0
        if self._sqlite is not None:
            return self._sqlite.ack(ids)
        message = self.tables.message
        with self._single.begin() as connection:
            return connection.execute(sa.delete(message).where(message.c.id.in_(ids))).rowcount

    def release(self, ids: Sequence[int], owner: str, delay_s: float = 0.0) -> int:
        """Give leased messages back, in their old place in the queue: visible at once, or
        after ``delay_s`` (a retry's back-off)."""
        if not ids:
            return 0
        message = self.tables.message
        with self._single.begin() as connection:
            return connection.execute(
                sa.update(message)
                .where(message.c.id.in_(ids), message.c.lease_owner == owner)
                .values(visible_at=self.now() + delay_s, lease_owner=None)
            ).rowcount

    def delete_leased(self, connection: sa.Connection, message_id: int, owner: str) -> bool:
        """Delete a message inside the caller's transaction if ``owner`` still holds it."""
        message = self.tables.message
        deleted = connection.execute(
            sa.delete(message).where(message.c.id == message_id, message.c.lease_owner == owner)
        ).rowcount
        return deleted == 1

    def mark_processed(self, connection: sa.Connection, message_uuid: str) -> bool:
        """Record a handled message uuid in the caller's transaction; False if it was there."""
        processed = self.tables.processed
        statement = self._insert_ignoring_duplicates(
            processed, {"uuid": message_uuid, "processed_at": self.now()}
        )
        # RETURNING, not rowcount: psycopg reports -1 for INSERT … ON CONFLICT DO NOTHING.
        inserted = connection.execute(statement.returning(processed.c.uuid))  # type: ignore[attr-defined]
        return inserted.first() is not None

    def try_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take the named lock if it is free, expired or already ours."""
        lock = self.tables.lock
        now = self.now()
        take = (
            sa.update(lock)
            .where(
                lock.c.name == name,
                sa.or_(lock.c.locked_until < now, lock.c.owner == owner, lock.c.owner.is_(None)),
            )
            .values(owner=owner, locked_until=now + ttl_s)
        )
        with self._single.begin() as connection:
            if connection.execute(take).rowcount == 1:
                return True
        # First use of this lock name: create the row, then try once more.
        with self._single.begin() as connection:
            row = {"name": name, "owner": None, "locked_until": 0.0}
            connection.execute(self._insert_ignoring_duplicates(lock, row))
        with self._single.begin() as connection:
            return bool(connection.execute(take).rowcount == 1)

    def unlock(self, name: str, owner: str) -> None:
        """Release the named lock if ``owner`` holds it; no effect otherwise."""
        lock = self.tables.lock
        with self._single.begin() as connection:
            connection.execute(
                sa.update(lock)
                .where(lock.c.name == name, lock.c.owner == owner)
                .values(owner=None, locked_until=0.0)
            )

    def renew(self, ids: Iterable[int], owner: str, lease_s: float) -> set[int]:
        """Extend the leases ``owner`` still holds; returns the ids it still held."""
        id_list = list(ids)
        if not id_list:
            return set()
        message = self.tables.message
        held = sa.and_(message.c.id.in_(id_list), message.c.lease_owner == owner)
        renew = sa.update(message).where(held).values(visible_at=self.now() + lease_s)
        with self._single.begin() as connection:
            if self.dialect in ("mysql", "mariadb"):
                # No UPDATE … RETURNING there: read back, in the same transaction, the rows
                # the update locked (a row this owner does not hold cannot become its own).
                connection.execute(renew)
                return set(connection.execute(sa.select(message.c.id).where(held)).scalars())
            return set(connection.execute(renew.returning(message.c.id)).scalars())

    def purge(self, queue: str) -> int:
        """Delete the messages of ``queue`` that no consumer holds."""
        message = self.tables.message
        with self.engine.begin() as connection:
            return connection.execute(
                sa.delete(message).where(
                    message.c.queue == queue, sa.not_(states.leased(message, self.now()))
                )
            ).rowcount

    def size(self, queue: str, connection: sa.Connection | None = None) -> int:
        """Messages of ``queue`` ready to be claimed now (``states.ready``)."""
        message = self.tables.message
        statement = sa.select(sa.func.count()).where(
            message.c.queue == queue, states.ready(message, self.now())
        )
        return int(self._scalar(statement, connection))

    def delete_expired(self) -> int:
        """Delete one bounded batch of messages whose time-to-live ran out."""
        message = self.tables.message
        expired = (
            sa.select(message.c.id).where(message.c.expires_at <= self.now()).limit(_EXPIRED_BATCH)
        )
        with self.engine.begin() as connection:
            if self.dialect in ("mysql", "mariadb"):
                ids = list(connection.execute(expired).scalars())
                return connection.execute(sa.delete(message).where(message.c.id.in_(ids))).rowcount
            return connection.execute(
                sa.delete(message).where(message.c.id.in_(expired.scalar_subquery()))
            ).rowcount

    # -- helpers ---------------------------------------------------------------------------

    def _execute(
        self,
        statement: sa.Executable,
        connection: sa.Connection | None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        if connection is not None:
            # The caller's transaction: it commits (or rolls back) the statement with its own work.
            with writing_in(connection):
                connection.execute(statement, parameters)
            return
        with self._single.begin() as own:
            own.execute(statement, parameters)

    def _scalar(self, statement: sa.Select[Any], connection: sa.Connection | None) -> Any:
        if connection is not None:
            return connection.execute(statement).scalar()
        with self.reader.connect() as own:
            return own.execute(statement).scalar()

    def _upsert(
        self, table: sa.Table, values: dict[str, Any], *, update: Sequence[str]
    ) -> sa.Executable:
        changes = {name: values[name] for name in update}
        keys = [column.name for column in table.primary_key.columns]
        if self.dialect == "postgresql":
            return (
                postgresql.insert(table)
                .values(**values)
                .on_conflict_do_update(index_elements=keys, set_=changes)
            )
        if self.dialect == "sqlite":
            return (
                sqlite.insert(table)
                .values(**values)
                .on_conflict_do_update(index_elements=keys, set_=changes)
            )
        return mysql.insert(table).values(**values).on_duplicate_key_update(**changes)

    def _insert_ignoring_duplicates(self, table: sa.Table, values: dict[str, Any]) -> sa.Executable:
        if self.dialect == "postgresql":
            return postgresql.insert(table).values(**values).on_conflict_do_nothing()
        if self.dialect == "sqlite":
            return sqlite.insert(table).values(**values).on_conflict_do_nothing()
        return sa.insert(table).values(**values).prefix_with("IGNORE")


def _in_delivery_order(rows: Sequence[Any]) -> list[ClaimedRow]:
    """Claimed rows as ClaimedRow, highest priority first, FIFO within a priority (RETURNING
    gives no order)."""
    # Rows are (id, payload, delivery_count, priority), from SQLAlchemy or from sqlite3.
    claimed = [ClaimedRow(*row) for row in rows]
    claimed.sort(key=lambda row: (-row.priority, row.id))
    return claimed
