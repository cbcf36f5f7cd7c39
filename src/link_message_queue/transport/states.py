"""A message's state, defined once: claims, ``size``, the cleaner, ``link-mq status`` and the
metrics all count with these conditions, so they agree; the statements written as SQL text
(PostgreSQL's claim and take, SQLite's hot statements) embed ``ready_sql``, never a copy
(``tests/unit/test_states.py`` checks).

Every live message (its time-to-live has not run out) is exactly one of:

- ready: ``visible_at`` has come. This includes a message whose lease ran out (its consumer
  died or stalled): a claim takes it again, so it counts as ready, not as held.
- leased (in flight): a consumer holds it, until ``visible_at``.
- delayed: nobody holds it and it is not visible yet (a requeue's back-off).

``now`` is an SQL expression or value in Unix seconds: ``clock.database_now``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def expired(message: sa.Table, now: Any) -> sa.ColumnElement[bool]:
    """Its time-to-live ran out: what the cleaner deletes (a message without one never expires)."""
    is_expired: sa.ColumnElement[bool] = message.c.expires_at <= now
    return is_expired


def live(message: sa.Table, now: Any) -> sa.ColumnElement[bool]:
    """Not expired: no time-to-live, or it has not run out."""
    return sa.or_(message.c.expires_at.is_(None), sa.not_(expired(message, now)))


def ready(message: sa.Table, now: Any) -> sa.ColumnElement[bool]:
    """Live and visible: what a claim may take."""
    return sa.and_(message.c.visible_at <= now, live(message, now))


def leased(message: sa.Table, now: Any) -> sa.ColumnElement[bool]:
    """Live and held by a consumer whose lease still runs."""
    return sa.and_(
        message.c.lease_owner.isnot(None), message.c.visible_at > now, live(message, now)
    )


def delayed(message: sa.Table, now: Any) -> sa.ColumnElement[bool]:
    """Live, held by nobody, and not visible yet."""
    return sa.and_(message.c.lease_owner.is_(None), message.c.visible_at > now, live(message, now))


def ready_sql(message: sa.Table, dialect: sa.Dialect, now: Any) -> str:
    """``ready`` as SQL text for the statements written as text (PostgreSQL's claim and take,
    SQLite's hot statements); ``now`` must render without a bound value (SQL text, or a
    named ``bindparam`` the caller supplies)."""
    return str(ready(message, now).compile(dialect=dialect))
