"""Transactional publish: messages published inside ``publish_on(connection)`` are written on
the caller's own SQLAlchemy connection, so they commit or roll back with the caller's work."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .errors import DeferredTransactionError

_bound_connection: ContextVar[sa.Connection | None] = ContextVar(
    "linkmq_bound_connection", default=None
)


@contextmanager
def publish_on(connection: sa.Connection | Session) -> Iterator[sa.Connection]:
    """Within the block, every ``linkmq+`` publish in this thread (or task) goes into
    ``connection``'s transaction: visible when it commits, gone if it rolls back."""
    bound = connection.connection() if isinstance(connection, Session) else connection
    token = _bound_connection.set(bound)
    try:
        yield bound
    finally:
        _bound_connection.reset(token)


def bound_connection() -> sa.Connection | None:
    return _bound_connection.get()


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
