"""The outbox: with RabbitMQ or Redis as the broker (``LINK_MQ_BROKER_URL``), the application
database stays the source of truth. The producer writes each workflow message into
``{prefix}outbox`` inside the caller's transaction; the relay publishes the rows in order and
deletes them — at least once: a relay that dies between publishing and deleting publishes those
rows again, and the consumers skip what they already processed (by message uuid).

One relay runs at a time (a named lock in the database), so rows go out in id order. Rows of
transactions that commit late can carry a lower id than rows already relayed: order is the
order of ids among committed rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ..db import QueueTables, database_now, ensure_schema, ensure_schema_in
from ..db.dialects import chunked, parameter_limit
from ..db.locks import Locks
from ..transport import DEFAULT_MAX_MESSAGE_BYTES, MessageStore, PublishRefusedError, writing_in

logger = logging.getLogger(__name__)

RELAY_LOCK = "outbox_relay"


@dataclass(frozen=True)
class OutboxRow:
    """A workflow message waiting in the outbox: the Celery task ``body`` (JSON text) for ``queue``,
    an optional ``countdown_s`` before it may run, and the ``retries`` already made."""

    id: int
    queue: str
    body: str
    countdown_s: float | None
    retries: int  # attempts made already (a retry re-enqueued by a tick-mode step)


class Outbox:
    """The outbox table: workflow messages written in the application's transaction and relayed to a
    broker that is not the application database (RabbitMQ, Redis) after commit. The first write
    checks the schema as the ``linkmq+`` transport does on connect: migrates it when
    ``auto_migrate`` (default: on SQLite, the embedded default), else raises
    ``SchemaMissingError`` saying to run ``link-mq db upgrade``. Database errors propagate as
    ``sqlalchemy.exc.SQLAlchemyError``."""

    def __init__(
        self, engine: sa.Engine, tables: QueueTables, *, auto_migrate: bool | None = None
    ) -> None:
        self.engine = engine
        self.table = tables.outbox
        self.prefix = tables.prefix
        self.auto_migrate = auto_migrate
        self._schema_checked = False
        self._schema_lock = threading.Lock()
        # The caller's transaction that created the tables, until one after it finds them.
        self._migrated_in: sa.RootTransaction | None = None

    def _ensure_schema(self, connection: sa.Connection | None) -> None:
        # With a RabbitMQ/Redis broker nothing else creates or checks the tables before the
        # first dispatch: without this a fresh database gave a raw "no such table" error.
        if self._schema_checked:
            return
        if connection is not None:
            # In the caller's transaction: on SQLite it holds the write lock from its start, so
            # a migration on another connection would wait for it. Tables created in it exist
            # only if it commits: not cached while that transaction is the one checking.
            transaction = connection.get_transaction()
            if ensure_schema_in(connection, self.prefix, self.auto_migrate):
                if transaction is None or transaction is not self._migrated_in:
                    self._schema_checked = True
            else:
                self._migrated_in = connection.get_transaction()
            return
        with self._schema_lock:
            if not self._schema_checked:
                ensure_schema(self.engine, self.prefix, self.auto_migrate)
                self._schema_checked = True

    def add(
        self,
        queue: str,
        body: str,
        connection: sa.Connection | None = None,
        *,
        countdown_s: float | None = None,
        retries: int = 0,
    ) -> None:
        """Write ``body`` for ``queue``: in ``connection``'s transaction (visible to the relay
        when it commits, gone if it rolls back), or in one of its own. A body over the message
        size limit is refused here (``PublishRefusedError``), before it is stored."""
        _check_size(queue, body)
        self._ensure_schema(connection)
        row = {"queue": queue, "body": body, "countdown_s": countdown_s, "retries": retries}
        if connection is not None:
            with writing_in(connection):
                connection.execute(self._insert(row, connection))
            return
        with self.engine.begin() as own:
            own.execute(self._insert(row, own))

    def _insert(self, row: Mapping[str, object], connection: sa.Connection) -> sa.Insert:
        # created_at by the database's clock: link-mq status and metrics compare it with that
        # clock, and the producer's host may be off.
        created_at = database_now(connection.dialect.name)
        return sa.insert(self.table).values(**row, created_at=created_at)

    def add_many(self, queue: str, bodies: Sequence[str], connection: sa.Connection) -> None:
        """Write ``bodies`` for ``queue``, in order, in ``connection``'s transaction, as ``add``
        does; a body over the size limit refuses them all (``PublishRefusedError``) before any
        is stored, so a caller that catches the error and commits commits none of them."""
        for body in bodies:
            _check_size(queue, body)
        self._ensure_schema(connection)
        for body in bodies:
            self.add(queue, body, connection)

    def oldest(self, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` waiting rows, oldest first."""
        table = self.table
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    table.c.id, table.c.queue, table.c.body, table.c.countdown_s, table.c.retries
                )
                .order_by(table.c.id)
                .limit(limit)
            )
            return [
                OutboxRow(row.id, row.queue, row.body, row.countdown_s, row.retries) for row in rows
            ]

    def delete(self, ids: Sequence[int]) -> None:
        """Delete the rows with ``ids`` (relayed), in one transaction (statements of as many
        ids as the database's parameter limit allows)."""
        with self.engine.begin() as connection:
            for chunk in chunked(ids, parameter_limit(connection)):
                connection.execute(sa.delete(self.table).where(self.table.c.id.in_(chunk)))

    def size(self) -> int:
        """How many rows wait to be relayed."""
        with self.engine.connect() as connection:
            count = connection.execute(sa.select(sa.func.count()).select_from(self.table))
            return int(count.scalar_one())


Publish = Callable[[OutboxRow], None]


def _check_size(queue: str, body: str) -> None:
    size = len(body.encode("utf-8"))
    if size > DEFAULT_MAX_MESSAGE_BYTES:
        raise PublishRefusedError(
            f"workflow message for queue {queue!r} is {size} bytes, "
            f"over the limit of {DEFAULT_MAX_MESSAGE_BYTES}"
        )


class OutboxRelay:
    """Publishes outbox rows in id order and deletes them; one relay at a time."""

    def __init__(
        self,
        outbox: Outbox,
        store: MessageStore,
        publish: Publish,
        *,
        owner: str,
        batch_size: int = 100,
        lock_s: float = 30.0,
    ) -> None:
        self.outbox = outbox
        self.store = store
        self.locks = Locks(store.engine, store.tables.lock)
        self.publish = publish
        self.owner = owner
        self.batch_size = batch_size
        self.lock_s = lock_s

    def run_once(self) -> int:
        """Relay what is in the outbox now; how many rows were published. Returns 0 at once if
        another relay holds the lock."""
        if not self.locks.try_lock(RELAY_LOCK, self.owner, self.lock_s):
            return 0
        relayed = 0
        try:
            while True:
                rows = self.outbox.oldest(self.batch_size)
                for row in rows:
                    self.publish(row)  # raises if the broker refuses: the row stays
                if rows:
                    self.outbox.delete([row.id for row in rows])
                    relayed += len(rows)
                    logger.info(
                        "relayed %d outbox messages",
                        len(rows),
                        extra={"action": "relay", "count": len(rows)},
                    )
                    # Still ours while we work: a long backlog must not let a second relay in.
                    self.locks.try_lock(RELAY_LOCK, self.owner, self.lock_s)
                if len(rows) < self.batch_size:
                    return relayed
        finally:
            self.locks.unlock(RELAY_LOCK, self.owner)

    def run_forever(self, idle_wait_s: float, stop: Callable[[], bool] = lambda: False) -> None:
        """``link-mq relay``: relay, and when the outbox is empty wait ``idle_wait_s``. A
        failed round (broker or database down) is logged and tried again."""
        while not stop():
            try:
                relayed = self.run_once()
            except Exception as exc:
                logger.error(
                    "relay round failed: %s: %s; retrying in %.1f s",
                    type(exc).__name__,
                    exc,
                    idle_wait_s,
                    extra={"action": "relay"},
                )
                relayed = 0
            if not relayed:
                time.sleep(idle_wait_s)
