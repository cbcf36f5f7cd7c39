"""What differs between SQL dialects in the statements every table's owner writes (upserts,
inserts that skip duplicates, single statements in autocommit): chosen here, once, so the
modules that own tables write no dialect branches of their own.

Dialects: ``postgresql``, ``sqlite``, ``mysql``/``mariadb`` (any other is treated as MySQL's
family by ``upsert`` and ``insert_ignoring_duplicates``, as the store always did).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite


def single_statement_engine(engine: sa.Engine) -> sa.Engine:
    """The engine to run one-statement transactions on: on PostgreSQL in autocommit, one round
    trip (statement and commit together) instead of three (BEGIN, statement, COMMIT); elsewhere
    ``engine`` itself (SQLite keeps explicit transactions: there is no network to save)."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine


def upsert(
    dialect: str, table: sa.Table, values: dict[str, Any], *, update: Sequence[str]
) -> sa.Executable:
    """INSERT ``values`` (column name -> value) into ``table``; on a duplicate primary key set
    the columns named in ``update`` instead (``ON CONFLICT DO UPDATE`` / ``ON DUPLICATE KEY
    UPDATE``). ``dialect``: ``sa.Engine.dialect.name``."""
    changes = {name: values[name] for name in update}
    keys = [column.name for column in table.primary_key.columns]
    if dialect == "postgresql":
        return (
            postgresql.insert(table)
            .values(**values)
            .on_conflict_do_update(index_elements=keys, set_=changes)
        )
    if dialect == "sqlite":
        return (
            sqlite.insert(table)
            .values(**values)
            .on_conflict_do_update(index_elements=keys, set_=changes)
        )
    return mysql.insert(table).values(**values).on_duplicate_key_update(**changes)


def insert_ignoring_duplicates(dialect: str, table: sa.Table, values: dict[str, Any]) -> sa.Insert:
    """INSERT ``values`` into ``table`` unless a row with the same key exists (never an error,
    so a caller's PostgreSQL transaction is never aborted by a concurrent insert). ``dialect``:
    ``sa.Engine.dialect.name``."""
    if dialect == "postgresql":
        return postgresql.insert(table).values(**values).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).values(**values).on_conflict_do_nothing()
    return sa.insert(table).values(**values).prefix_with("IGNORE")
