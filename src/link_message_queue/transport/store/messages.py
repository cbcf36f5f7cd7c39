"""The message operations (publish, claim, take, ack, release, renew, purge, size, expiry) as one
small interface, ``MessageSQL``, implemented once per dialect: ``postgres``, ``sqlite``,
``mysql`` (MySQL and MariaDB), with the SQL two or more of them share in ``common``.
``message_sql`` is the one place that picks the implementation for an engine's dialect.

Semantics (leases, redelivery, priorities) are decided by the channel; these modules only know
how to say them in SQL. What "ready" means is ``states.ready``, nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from ...db import QueueTables
from ..errors import TransportError
from ..rows import ClaimedRow, PendingRow
from .connections import Connections
from .mysql import MysqlMessages
from .postgres import PostgresMessages
from .sqlite import SqliteMessages


class MessageSQL(Protocol):
    """The message table's operations on one dialect. Times are Unix seconds by the database's
    clock (``db.clock``); ``connection``, where a method takes one, is the caller's
    transaction (the statement commits or rolls back with it). Database errors propagate as
    ``sqlalchemy.exc.SQLAlchemyError``."""

    def put(self, queue: str, payload: str, priority: int, ttl_s: float | None) -> None:
        """Insert one message into ``queue`` (``payload``: JSON text, ``priority`` 0-255),
        committed and visible at once; it expires ``ttl_s`` seconds from now, or never if None.
        A store that holds connections writes it on the process's shared held connection
        (``put_connection``: SQLite, PostgreSQL with psycopg) unless another thread is using
        it. (Messages published inside a caller's transaction go through ``put_many``.)"""

    def put_many(self, rows: Sequence[PendingRow], connection: sa.Connection | None = None) -> None:
        """Insert ``rows`` in order, all or none, timed by the database's clock at the insert:
        inside ``connection``'s transaction (visible when it commits), or in one transaction
        of their own. On PostgreSQL the batch signals each of its queues once (NOTIFY,
        delivered on commit); waking consumers elsewhere is the caller's part."""

    def claim(
        self, queue: str, owner: str, lease_s: float, limit: int, acked: Sequence[int] = ()
    ) -> list[ClaimedRow]:
        """Lease up to ``limit`` ready messages of ``queue`` to ``owner`` for ``lease_s``
        seconds, highest priority first, FIFO within a priority (the order returned); delete
        the ``acked`` messages with it (acks ride along with the next claim)."""

    def take(self, queue: str, limit: int, acked: Sequence[int] = ()) -> list[ClaimedRow]:
        """Delete and return up to ``limit`` ready messages of ``queue``, in claim order: a
        delivery without acknowledgement (AMQP's no_ack); ``acked`` as in ``claim``."""

    def ack(self, ids: Sequence[int]) -> int:
        """Delete the acknowledged messages ``ids``; returns how many rows were deleted."""

    def release(self, ids: Sequence[int], owner: str, delay_s: float = 0.0) -> int:
        """Give the messages ``ids`` that ``owner`` leased back, in their old place in the
        queue: visible at once, or after ``delay_s`` seconds (a retry's back-off); returns how
        many were released."""

    def renew(self, ids: Iterable[int], owner: str, lease_s: float) -> set[int]:
        """Extend to ``lease_s`` seconds from now the leases ``owner`` still holds among
        ``ids``; returns the ids it still held."""

    def delete_leased(self, connection: sa.Connection, message_id: int, owner: str) -> bool:
        """Delete message ``message_id`` inside ``connection``'s transaction if ``owner`` still
        holds it; True if it did."""

    def purge(self, queue: str) -> int:
        """Delete the messages of ``queue`` that no consumer holds; returns how many."""

    def size(self, queue: str, connection: sa.Connection | None = None) -> int:
        """Messages of ``queue`` ready to be claimed now (``states.ready``), read on
        ``connection`` if given."""

    def delete_expired(self, limit: int) -> int:
        """Delete up to ``limit`` messages whose time-to-live ran out; returns how many."""

    def read_held(self, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]] | None:
        """The rows of the read ``sql`` (the driver's placeholders: psycopg's ``%(name)s``,
        sqlite3's ``:name``) on the process's shared put connection, values as text on
        PostgreSQL; None (nothing read) where the store holds no connection or another thread
        is using it: the caller reads through the pool instead. Seen: all committed before."""

    def close(self) -> None:
        """Let go of the process's shared connections this store holds for these operations
        (claims on PostgreSQL with psycopg, single puts on SQLite and PostgreSQL with psycopg;
        the last store to let go gives them back to the pool); they stay usable (the next one
        holds them again). Idempotent."""


_IMPLEMENTATIONS: dict[str, Callable[[Connections, QueueTables], MessageSQL]] = {
    "postgresql": PostgresMessages,
    "sqlite": SqliteMessages,
    "mysql": MysqlMessages,
    "mariadb": MysqlMessages,
}


def message_sql(connections: Connections, tables: QueueTables) -> MessageSQL:
    """The message operations for ``connections``' dialect on ``tables``. Raises
    ``TransportError`` for a dialect without them (PostgreSQL, SQLite, MySQL and MariaDB have
    them)."""
    try:
        implementation = _IMPLEMENTATIONS[connections.dialect]
    except KeyError:
        raise TransportError(
            f"no message statements for the {connections.dialect} dialect"
        ) from None
    return implementation(connections, tables)
