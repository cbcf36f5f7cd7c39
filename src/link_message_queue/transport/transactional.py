"""Transactional publish: messages published inside ``publish_on(connection)`` are written on
the caller's own SQLAlchemy connection, so they commit or roll back with the caller's work.

They are buffered and written together, one multi-row write (COPY on PostgreSQL, multi-row
INSERTs on SQLite) with one wake-up per queue, at the first of: the block's end, the caller
committing or opening a savepoint (``begin_nested``) inside the block, or the transport itself
reading the queue on that connection (``size``). However the block ends (an exception too),
its messages are then in the caller's transaction, and the transaction decides: they commit
with it, and a rollback (of the transaction, or to a savepoint opened in the block) drops what
it undoes. An all-or-none block (``publish_all_or_none``: ``send_many``, the producer's
``dispatch_many``) instead forgets its messages when it raises, and a read of the queue inside
it does not write them early."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from . import after_commit
from .errors import DeferredTransactionError
from .rows import PendingRow

# Writes a batch's rows for one store into the caller's transaction (``connection``).
Writer = Callable[[sa.Connection, list[PendingRow]], None]


class PendingBatch:
    """The messages published in one ``publish_on`` block and not written yet, in order,
    per writer (a channel's store). For a Session, its connection is taken at the first
    publish and again after the Session committed or rolled back (which releases it).
    ``all_or_none``: see ``publish_all_or_none``."""

    def __init__(self, target: sa.Connection | Session, *, all_or_none: bool = False) -> None:
        self._session = target if isinstance(target, Session) else None
        self._connection = None if isinstance(target, Session) else target
        self._rows: dict[Writer, list[PendingRow]] = {}
        self._closed = False
        self._all_or_none = all_or_none

    @property
    def connection(self) -> sa.Connection:
        """The caller's connection that the block's messages are written on."""
        if self._session is not None and (self._connection is None or self._connection.closed):
            self._connection = self._session.connection()
        assert self._connection is not None  # set above, or given
        return self._connection

    def writes_on(self, connection: sa.Connection) -> bool:
        """Whether this batch writes on ``connection`` (without taking a Session's connection)."""
        return self._connection is connection

    def targets(self, target: sa.Connection | Session) -> bool:
        """Whether this batch was opened on ``target`` (the same Connection or Session)."""
        return target is (self._session if self._session is not None else self._connection)

    def add(self, writer: Writer, row: PendingRow) -> None:
        """Buffer ``row`` for ``writer``, opening a transaction on the caller's connection first if
        none is open (so the caller's ``commit()`` has one to commit). After the block ended (a
        task or thread that copied the block's context publishes later) the row is written at
        once, on the connection, as it would have been inside the block."""
        if self._closed:
            writer(self.connection, [row])  # the writer translates a refused SQLite lock
            return
        if not self._rows and not self.connection.in_transaction():
            # As a statement would: the caller's commit() must find a transaction to commit.
            with writing_in(self.connection):
                self.connection.begin()
        pending = self._rows.get(writer)
        if pending is None:
            pending = self._rows[writer] = []
        pending.append(row)

    def flush(self) -> None:
        """Write what is buffered into the caller's transaction."""
        batches, self._rows = self._rows, {}
        for writer, rows in batches.items():
            writer(self.connection, rows)

    def flush_before_read(self) -> None:
        """Write what is buffered before the transport reads the queue on the caller's
        connection, unless the batch is all-or-none: written before the block's end, its rows
        could not be taken back if the block then raised (the read does not count them)."""
        if not self._all_or_none:
            self.flush()

    def drop(self) -> None:
        """Forget every buffered row without writing it (the caller rolled back)."""
        self._rows = {}

    def close(self, failure: BaseException | None) -> None:
        """The block ended: write what is buffered into the caller's transaction, which decides
        their fate; an all-or-none block that ended with ``failure`` forgets them instead. When
        the block ended with ``failure`` and the write fails too (the transaction is broken:
        PostgreSQL refuses statements after an error), ``failure`` propagates with a note
        saying the messages were not written."""
        self._closed = True
        if failure is None:
            self.flush()
            return
        if self._all_or_none:
            self.drop()
            return
        try:
            self.flush()
        except Exception as exc:
            failure.add_note(
                f"link-message-queue: the publish_on() block's messages were not written "
                f"into the transaction ({type(exc).__name__}: {exc})"
            )


# The blocks open in this thread (or task), innermost last.
_open_batches: ContextVar[tuple[PendingBatch, ...]] = ContextVar("linkmq_open_batches", default=())


def publish_on(
    connection: sa.Connection | Session,
) -> AbstractContextManager[sa.Connection | Session]:
    """Within the block, every ``linkmq+`` publish in this thread (or task) goes into
    ``connection``'s transaction: visible when it commits, gone if it rolls back. Yields what it
    was given. A Session's connection is taken at the first publish (so ``session.begin()``
    may follow) and again after the Session commits.

    The block's messages are written together, in one multi-row statement, at the block's
    end (however it ends) or just before the caller commits inside it (or opens a savepoint
    there), whichever comes first; until then a query of the caller's own on the message table
    does not see them (``queue.qsize()`` does). A rollback drops those it covers. Errors of the
    write are SQLAlchemy's, raised from the block's end or from the caller's ``commit()``.

    A generator that yields inside the block lends it to its caller until it resumes (Python
    generators share their caller's context): publish there only what belongs in the block's
    transaction."""
    return _block(connection, all_or_none=False)


def publish_all_or_none(
    connection: sa.Connection | Session,
) -> AbstractContextManager[sa.Connection | Session]:
    """``publish_on`` for a block whose messages are one unit (``send_many``, the producer's
    ``dispatch_many``): if the block raises, none of its messages are written into
    ``connection``'s transaction, so a caller that catches the error and commits commits
    none of them. Messages of an enclosing ``publish_on`` block are written before it begins
    and stay. A read of the queue on the caller's connection inside it (``size``) does not
    count its messages. Only a commit or savepoint inside the block (the caller's own, from a
    publish signal's receiver, say) writes them before its end, for good."""
    return _block(connection, all_or_none=True)


@contextmanager
def _block(
    connection: sa.Connection | Session, *, all_or_none: bool
) -> Iterator[sa.Connection | Session]:
    for outer in _open_batches.get():
        if outer.targets(connection):
            outer.flush()  # a nested block on the same target: the outer's messages go first
    batch = PendingBatch(connection, all_or_none=all_or_none)
    token = _open_batches.set((*_open_batches.get(), batch))
    try:
        yield connection
    except BaseException as failure:
        batch.close(failure)
        raise
    else:
        batch.close(None)
    finally:
        _open_batches.reset(token)


def bound_batch() -> PendingBatch | None:
    """The innermost ``publish_on`` block's batch in this thread (or task), if any."""
    batches = _open_batches.get()
    return batches[-1] if batches else None


def bound_connection() -> sa.Connection | None:
    """The caller's connection of the innermost ``publish_on`` block in this context, or None
    outside one."""
    batch = bound_batch()
    return None if batch is None else batch.connection


def flush_pending(connection: sa.Connection) -> None:
    """Write the messages buffered for ``connection`` now, before reading its queues (but
    those of all-or-none blocks: see ``PendingBatch.flush_before_read``)."""
    for batch in _batches_of(connection):
        batch.flush_before_read()


def _batches_of(connection: sa.Connection) -> list[PendingBatch]:
    """The open blocks writing on ``connection``, outermost first."""
    return [batch for batch in _open_batches.get() if batch.writes_on(connection)]


def _write_before_commit(connection: sa.Connection) -> None:
    batches = _batches_of(connection)
    for batch in batches:
        batch.flush()
    if batches:
        # The rows' wake-ups are due with this commit, whichever listener ran first.
        after_commit.committing(connection)


def _write_before_savepoint(connection: sa.Connection, _name: str) -> None:
    # Written before the savepoint, so that rolling back to it does not undo them.
    for batch in _batches_of(connection):
        batch.flush()


def _drop_on_rollback(connection: sa.Connection) -> None:
    for batch in _batches_of(connection):
        batch.drop()


def _drop_on_rollback_to_savepoint(connection: sa.Connection, _name: str, _context: Any) -> None:
    # Everything buffered was published since the innermost open savepoint began (opening
    # one writes the buffer): this rollback undoes it.
    _drop_on_rollback(connection)


@contextmanager
def writing_in(connection: sa.Connection) -> Iterator[None]:
    """Around a write into the caller's transaction: on SQLite, a transaction that began
    without the write lock and is refused it raises ``DeferredTransactionError``, which says
    what to change, instead of a bare "database is locked" (and, not being a connection
    error, is not retried by kombu in a transaction that can never get the lock)."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        if not _refused_write_lock(connection, exc):
            raise
        reason = exc.orig
        raise DeferredTransactionError(
            f"the caller's SQLite transaction could not take the write lock to publish "
            f"({reason}, {getattr(reason, 'sqlite_errorname', 'SQLITE_BUSY')}): it began "
            "DEFERRED (a plain BEGIN), and SQLite refuses the lock at once to a deferred "
            "transaction that has read since another connection (a worker, say) wrote. Begin "
            "the application's transactions with BEGIN IMMEDIATE: create its engine with "
            "link_message_queue.transport.sqlite_engine(url), or call "
            "configure_sqlite_engine(engine) before its first connection. Roll this "
            "transaction back: it cannot write any more"
        ) from exc


def _refused_write_lock(connection: sa.Connection, exc: sa.exc.OperationalError) -> bool:
    """SQLITE_BUSY (or BUSY_SNAPSHOT) on a write inside an open transaction: a transaction that
    began IMMEDIATE holds the lock from its BEGIN and is never refused it."""
    reason = exc.orig
    if connection.dialect.name != "sqlite" or not isinstance(reason, sqlite3.OperationalError):
        return False
    if reason.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
        return False
    # Autocommit (no BEGIN at all): the statement waited out the busy timeout by itself.
    driver = connection.connection.driver_connection
    return bool(getattr(driver, "in_transaction", False))


# Every engine's transactions are watched from this module's import on (class-level listeners,
# registered once; see after_commit for why not per engine at its first publish_on). For a
# connection outside every publish_on block each one looks at an empty tuple.
event.listen(sa.Engine, "commit", _write_before_commit)
event.listen(sa.Engine, "savepoint", _write_before_savepoint)
event.listen(sa.Engine, "rollback", _drop_on_rollback)
event.listen(sa.Engine, "rollback_savepoint", _drop_on_rollback_to_savepoint)
