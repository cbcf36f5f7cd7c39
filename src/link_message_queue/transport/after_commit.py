"""Wake-ups for messages published inside a caller's transaction (``publish_on``): sent once
that transaction has committed, never for one that rolled back.

PostgreSQL needs none of this (its NOTIFY is delivered on commit). Elsewhere a consumer woken
before the commit would find nothing and sleep until its next poll, and SQLAlchemy's Core has
no after-commit event: its ``commit`` event fires just before the database commits. So a commit
only marks the transaction's queues as due, and they are woken at the first sign that the
commit is over: the connection begins its next transaction, or goes back to the pool (which
``with engine.begin()`` blocks and a Session's ``commit()`` both do at once). A connection kept
open and idle after its commit leaves its consumers to their next poll."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

Wake = Callable[[str], None]
_KEY = "linkmq_after_commit"


@dataclass
class _Due:
    """Per database connection: (wake, queue) pairs of the open and of the committed
    transaction."""

    uncommitted: set[tuple[Wake, str]] = field(default_factory=set)
    committed: set[tuple[Wake, str]] = field(default_factory=set)


def wake_after_commit(connection: sa.Connection, queue: str, wake: Wake) -> None:
    """Call ``wake(queue)`` once ``connection``'s current transaction has committed."""
    due = connection.info.setdefault(_KEY, _Due())
    due.uncommitted.add((wake, queue))


def committing(connection: sa.Connection) -> None:
    """``connection``'s transaction is committing: what it registered is due once the commit
    is over. Also called by a ``commit`` listener that registers wake-ups itself, since
    SQLAlchemy does not say in which order listeners run; calling it twice changes nothing."""
    _on_commit(connection)


def _on_commit(connection: sa.Connection) -> None:
    due: _Due | None = connection.info.get(_KEY)
    if due is not None:
        due.committed |= due.uncommitted
        due.uncommitted.clear()


def _on_rollback(connection: sa.Connection) -> None:
    if connection.invalidated:
        # Its DBAPI connection is gone, and what it registered with it: reading ``info`` would
        # raise PendingRollbackError here and hide the driver's error from the caller.
        return
    due: _Due | None = connection.info.get(_KEY)
    if due is not None:
        due.uncommitted.clear()


def _on_begin(connection: sa.Connection) -> None:
    # A new transaction: the previous one's commit is over.
    due: _Due | None = connection.info.get(_KEY)
    if due is not None:
        _wake_committed(due)


def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
    due: _Due | None = record.info.pop(_KEY, None) if record is not None else None
    if due is not None:
        # Anything not committed by now was rolled back when the connection was returned.
        _wake_committed(due)


def _wake_committed(due: _Due) -> None:
    woken, due.committed = due.committed, set()
    for wake, queue in woken:
        wake(queue)  # a hint that never raises for want of a listener (see doorbell)


# Every engine's transactions and every pool's check-ins are watched from this module's import
# on (class-level listeners, registered once). Registered on an engine at its first use, they
# raced with other threads running that engine's listeners (SQLAlchemy's listener lists must
# not change while another thread iterates them: "deque mutated during iteration"). For a
# connection without wake-ups each one is a dict lookup.
event.listen(sa.Engine, "commit", _on_commit)
event.listen(sa.Engine, "rollback", _on_rollback)
event.listen(sa.Engine, "begin", _on_begin)
event.listen(sa.pool.Pool, "checkin", _on_checkin)
