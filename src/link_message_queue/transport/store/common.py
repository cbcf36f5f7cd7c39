"""The message SQL that two or more dialects share, as ``CommonMessages``, the base of each
dialect's implementation (``postgres``, ``sqlite``, ``mysql``), which overrides what it says
differently. Built with SQLAlchemy's expression language, so one text serves every dialect.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from ...db import SECONDS, QueueTables
from ...db.dialects import chunked, parameter_limit
from .. import states
from ..put_connection import PutConnection, hold_shared, let_go_shared
from ..rows import INSERT_COLUMNS, ClaimedRow, PendingRow
from ..transactional import writing_in
from .connections import Connections

# The columns a new row fills, for the statements written as text (SQLite, PostgreSQL).
INSERT_COLUMNS_SQL = ", ".join(INSERT_COLUMNS)
# Parameters a statement over a list of ids keeps for its others (owner, times, mark).
OTHER_PARAMETERS = 16


class CommonMessages:
    """The message operations whose SQL is the same on PostgreSQL, SQLite and MySQL/MariaDB
    (release, delete_leased, purge, size), or on two of them (ack, renew with ``RETURNING``,
    delete_expired with a subquery, put_many's frame, the insert timed by the database) and
    the shared put connection of a store that holds connections (``_put_held``). A dialect's
    class adds ``put``, ``claim``, ``take`` and ``_insert_many`` (see ``messages.MessageSQL``
    for each method's contract), and ``_new_put_connection`` where it publishes on a held
    connection (``_publishes_held``)."""

    # Whether single publishes can run on a held connection (``_new_put_connection``).
    _publishes_held = False

    def __init__(self, connections: Connections, tables: QueueTables) -> None:
        self._db = connections
        self.tables = tables
        self.message = tables.message
        # The process's shared put connection while this store holds it (hold_connections).
        self._puts: PutConnection | None = None
        self._holding_lock = threading.Lock()

    # -- held connections ------------------------------------------------------------------

    def _new_put_connection(self) -> PutConnection:
        """A new ``PutConnection`` for this store's single publishes, where
        ``_publishes_held``."""
        raise NotImplementedError  # a dialect that publishes on a held connection has one

    def _put_held(self, row: PendingRow) -> bool:
        """Write ``row`` on the process's shared put connection (held from the first publish
        until the last store sharing it closes), committed: True; False (nothing written) for a
        store that holds no connections, a dialect without one, or when another thread is
        using it (the caller then writes through SQLAlchemy)."""
        puts = self._held_puts()
        return puts is not None and puts.put(row)

    def read_held(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]] | None:
        """See ``MessageSQL.read_held``."""
        puts = self._held_puts()
        return None if puts is None else puts.select(sql, parameters)

    def _held_puts(self) -> PutConnection | None:
        """The process's shared put connection, held from the first use; None for a store
        that holds no connections or a dialect without one."""
        puts = self._puts
        if puts is None:
            if not (self._publishes_held and self._db.hold_connections):
                return None
            with self._holding_lock:
                if self._puts is None:
                    self._puts = hold_shared(self._puts_key(), self._new_put_connection)
                puts = self._puts
        return puts

    def _puts_key(self) -> tuple[str, sa.Engine, str, str | None]:
        # One per engine and message table: the statement names the table (and its channel);
        # and per synchronous_commit, set on the connection's session.
        return ("put", self._db.engine, self.message.name, self._db.publish_synchronous_commit)

    def close(self) -> None:
        """See ``MessageSQL.close``: lets go of the shared put connection (the last store to
        let go gives it back to the pool); the next put holds it again."""
        with self._holding_lock:
            puts, self._puts = self._puts, None
        if puts is not None:
            let_go_shared(self._puts_key(), puts)

    # -- publish ---------------------------------------------------------------------------

    def put_many(self, rows: Sequence[PendingRow], connection: sa.Connection | None = None) -> None:
        """See ``MessageSQL.put_many``."""
        if not rows:
            return
        if connection is not None:
            with writing_in(connection):
                self._insert_many(connection, rows)
        else:
            self._put_many_alone(rows)

    def _put_many_alone(self, rows: Sequence[PendingRow]) -> None:
        # A single row is one statement: autocommit (PostgreSQL) spares BEGIN and COMMIT.
        engine = self._db.single if len(rows) == 1 else self._db.engine
        with engine.begin() as own:
            self._insert_many(own, rows)

    def _insert_many(self, connection: sa.Connection, rows: Sequence[PendingRow]) -> None:
        raise NotImplementedError  # each dialect's class writes its batch its own way

    def _insert_rows(self) -> sa.Insert:
        """INSERT of new messages timed by the database: parameters from
        ``_insert_parameters``, one dict a row (an executemany)."""
        now = self._db.now()
        return sa.insert(self.message).values(
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

    # -- after a claim ---------------------------------------------------------------------

    def _ids_in(
        self, connection: sa.Connection, ids: Sequence[int]
    ) -> Iterator[sa.ColumnElement[bool]]:
        """ "id among ``ids``", one condition a statement: as many as keep each statement
        within the connection's parameter limit (``db.dialects.parameter_limit``; a worker
        may hold tens of thousands of prefetched ETA tasks). PostgreSQL overrides it with one
        array parameter."""
        per_statement = parameter_limit(connection) - OTHER_PARAMETERS
        for chunk in chunked(ids, per_statement):
            yield self.message.c.id.in_(chunk)

    def ack(self, ids: Sequence[int]) -> int:
        """See ``MessageSQL.ack``."""
        if not ids:
            return 0
        message = self.message
        with self._db.single.begin() as connection:
            return sum(
                connection.execute(sa.delete(message).where(in_ids)).rowcount
                for in_ids in self._ids_in(connection, ids)
            )

    def release(self, ids: Sequence[int], owner: str, delay_s: float = 0.0) -> int:
        """See ``MessageSQL.release``."""
        if not ids:
            return 0
        message = self.message
        with self._db.single.begin() as connection:
            return sum(
                connection.execute(
                    sa.update(message)
                    .where(in_ids, message.c.lease_owner == owner)
                    .values(visible_at=self._db.now() + delay_s, lease_owner=None)
                ).rowcount
                for in_ids in self._ids_in(connection, ids)
            )

    def renew(self, ids: Iterable[int], owner: str, lease_s: float) -> set[int]:
        """See ``MessageSQL.renew``: all ``ids`` in one call, in as many statements as the
        database's parameter limit asks for."""
        id_list = list(ids)
        if not id_list:
            return set()
        message = self.message
        renewed: set[int] = set()
        with self._db.single.begin() as connection:
            for in_ids in self._ids_in(connection, id_list):
                held = sa.and_(in_ids, message.c.lease_owner == owner)
                renew = sa.update(message).where(held).values(visible_at=self._db.now() + lease_s)
                renewed |= self._renew_in(connection, held, renew)
        return renewed

    def _renew_in(
        self, connection: sa.Connection, held: sa.ColumnElement[bool], renew: sa.Update
    ) -> set[int]:
        """Run ``renew`` (the rows ``held``) on ``connection``; the ids it renewed."""
        return set(connection.execute(renew.returning(self.message.c.id)).scalars())

    def delete_leased(self, connection: sa.Connection, message_id: int, owner: str) -> bool:
        """See ``MessageSQL.delete_leased``."""
        message = self.message
        deleted = connection.execute(
            sa.delete(message).where(message.c.id == message_id, message.c.lease_owner == owner)
        ).rowcount
        return deleted == 1

    # -- whole queues ----------------------------------------------------------------------

    def purge(self, queue: str) -> int:
        """See ``MessageSQL.purge``."""
        message = self.message
        with self._db.engine.begin() as connection:
            return connection.execute(
                sa.delete(message).where(
                    message.c.queue == queue, sa.not_(states.leased(message, self._db.now()))
                )
            ).rowcount

    def size(self, queue: str, connection: sa.Connection | None = None) -> int:
        """See ``MessageSQL.size``."""
        message = self.message
        statement = sa.select(sa.func.count()).where(
            message.c.queue == queue, states.ready(message, self._db.now())
        )
        return int(self._db.scalar(statement, connection))

    def delete_expired(self, limit: int) -> int:
        """See ``MessageSQL.delete_expired``."""
        message = self.message
        with self._db.engine.begin() as connection:
            return connection.execute(
                sa.delete(message).where(message.c.id.in_(self._expired(limit).scalar_subquery()))
            ).rowcount

    def _expired(self, limit: int) -> sa.Select[int]:
        message = self.message
        return sa.select(message.c.id).where(states.expired(message, self._db.now())).limit(limit)


def in_delivery_order(rows: Iterable[Any]) -> list[ClaimedRow]:
    """Claimed rows, each (id, payload, delivery_count, priority) from SQLAlchemy or sqlite3, as
    ``ClaimedRow``, highest priority first, FIFO within a priority (RETURNING gives no order)."""
    claimed = [ClaimedRow(*row) for row in rows]
    claimed.sort(key=lambda row: (-row.priority, row.id))
    return claimed
