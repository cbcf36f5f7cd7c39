"""Whose clock counts: the database's.

Every time that one process writes and another compares (a lease's end, when a message becomes
visible or expires, when a queue was last used, a consumer's last heartbeat, a named lock's end)
is taken from the database server's clock inside the SQL statement, so hosts whose clocks
disagree still agree on what is ready. Times are Unix seconds as floats (see ``schema``).

PostgreSQL: ``statement_timestamp()``, one value for the whole statement (a claim's "now" and
its lease's end agree) yet fresh for every statement of a long transaction. MySQL/MariaDB:
``UTC_TIMESTAMP(6)``, also fixed for the statement. SQLite runs on one host, in the caller's
process: its "now" is that host's clock, read in Python (its hot statements need the value:
see ``store.sqlite``).
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from .schema import SECONDS

# The database's now, in Unix seconds, as SQL text (for the few statements written as text).
POSTGRESQL_NOW_SQL = "CAST(EXTRACT(EPOCH FROM statement_timestamp()) AS DOUBLE PRECISION)"
# From UTC_TIMESTAMP, not UNIX_TIMESTAMP(NOW(6)): NOW() is in the session's time zone, and
# the hour a daylight-saving change repeats would convert to the wrong instant.
MYSQL_NOW_SQL = "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) * 1e-6)"


def database_now(dialect: str) -> sa.ColumnElement[float]:
    """Now, in Unix seconds, by the clock of the database behind ``dialect`` (an SQL
    expression evaluated by the server); on SQLite this host's clock, as a bound value read
    now (so build one expression per statement and use it throughout that statement)."""
    if dialect == "postgresql":
        return sa.literal_column(POSTGRESQL_NOW_SQL, SECONDS)
    if dialect in ("mysql", "mariadb"):
        return sa.literal_column(MYSQL_NOW_SQL, SECONDS)
    return sa.literal(time.time(), SECONDS)


def read_database_now(connection: sa.Connection) -> float:
    """Now by the database's clock (one query: for readers such as ``link-mq status``, never
    for the hot path, whose statements compute it themselves)."""
    return float(connection.execute(sa.select(database_now(connection.dialect.name))).scalar_one())
