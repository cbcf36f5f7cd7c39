"""What differs between SQL dialects in the statements every table's owner writes (upserts,
inserts that skip duplicates, single statements in autocommit): chosen here, once, so the
modules that own tables write no dialect branches of their own.

Dialects: ``postgresql``, ``sqlite``, ``mysql``/``mariadb`` (any other is treated as MySQL's
family by ``upsert`` and ``insert_ignoring_duplicates``, as the store always did).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

_T = TypeVar("_T")

# psycopg and MySQL's protocol count a statement's parameters in 16 bits: at most 65,535.
SERVER_PARAMETER_LIMIT = 65_535
# SQLite's variable limit where the connection cannot say (SQLite before 3.32 and builds
# compiled with the old default allow 999 a statement).
_SQLITE_FALLBACK_LIMIT = 999


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


def sqlite_variable_limit(dbapi_connection: sqlite3.Connection) -> int:
    """How many bound parameters one statement may carry on this sqlite3 connection
    (``SQLITE_LIMIT_VARIABLE_NUMBER``: 32,766 on a stock SQLite >= 3.32, 999 before, and
    whatever ``setlimit`` set); 999 where Python cannot read it."""
    getlimit = getattr(dbapi_connection, "getlimit", None)
    if getlimit is None:
        return _SQLITE_FALLBACK_LIMIT
    return int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))


def parameter_limit(connection: sa.Connection) -> int:
    """How many bound parameters one statement on ``connection`` may carry: SQLite's own limit
    for this connection (``sqlite_variable_limit``); 65,535 on the other databases."""
    if connection.dialect.name == "sqlite":
        return sqlite_variable_limit(connection.connection.driver_connection)  # type: ignore[arg-type]
    return SERVER_PARAMETER_LIMIT


def chunked(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    """``items`` in order, in consecutive slices of at most ``size`` (>= 1) items; nothing for
    no items. For statements whose parameters grow with a list (``IN (…)``, multi-row
    ``VALUES``), to keep each within ``parameter_limit``."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, not {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]
