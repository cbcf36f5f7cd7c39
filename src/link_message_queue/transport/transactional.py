"""Transactional publish: messages published inside ``publish_on(connection)`` are written on
the caller's own SQLAlchemy connection, so they commit or roll back with the caller's work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

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
