"""Named locks in the database (table ``{prefix}lock``): one holder at a time across processes
and hosts, with a time-out so a dead holder's lock frees itself. Used by the tick consumer step
(``consumer_step``) and the outbox relay (``outbox_relay``)."""

from __future__ import annotations

import sqlalchemy as sa

from .clock import database_now
from .dialects import insert_ignoring_duplicates, single_statement_engine


class Locks:
    """The named locks in ``table`` (``QueueTables.lock``: name, owner, locked_until) on
    ``engine``. Times are Unix seconds by the database's clock; database errors propagate as
    ``sqlalchemy.exc.SQLAlchemyError``."""

    def __init__(self, engine: sa.Engine, table: sa.Table) -> None:
        self.engine = engine
        self.table = table
        self._single = single_statement_engine(engine)

    def try_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take the lock ``name`` for ``owner`` until ``ttl_s`` seconds from now if it is free,
        expired or already ``owner``'s (then it is extended); True if ``owner`` holds it now."""
        lock = self.table
        now = database_now(self.engine.dialect.name)
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
            connection.execute(insert_ignoring_duplicates(self.engine.dialect.name, lock, row))
        with self._single.begin() as connection:
            return bool(connection.execute(take).rowcount == 1)

    def unlock(self, name: str, owner: str) -> None:
        """Release the lock ``name`` if ``owner`` holds it; no effect otherwise."""
        lock = self.table
        with self._single.begin() as connection:
            connection.execute(
                sa.update(lock)
                .where(lock.c.name == name, lock.c.owner == owner)
                .values(owner=None, locked_until=0.0)
            )
