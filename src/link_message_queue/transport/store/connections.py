"""How the store's modules reach the database: the engine, its autocommit twin for one-statement
transactions, its read-only twin for reads, and running a statement in the caller's transaction
or in one of its own."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ...db import database_now, read_only
from ...db.dialects import single_statement_engine
from ..errors import TransportOptionError
from ..transactional import writing_in


class Connections:
    """``engine`` (``dialect`` is its name), ``single`` (one-statement transactions: autocommit
    on PostgreSQL, see ``db.dialects.single_statement_engine``) and ``reader`` (read-only
    connections). ``hold_connections``: claims (PostgreSQL with psycopg, ``claim_connection``)
    and single publishes (``put_connection``: SQLite, PostgreSQL with psycopg) run on the
    process's shared held pool connections, which the store lets go of when it closes (the
    last store to let go gives them back to the pool); only the kombu ``Transport`` asks for
    it (it closes the store in ``close_connection``), so the runtime's and the monitors'
    stores, never closed, take no pool slot between statements.
    ``publish_synchronous_commit``: PostgreSQL's ``synchronous_commit`` for the store's single
    publishes outside a caller's transaction (``MessageSQL.put``), one of
    ``options.SYNCHRONOUS_COMMIT_VALUES``, or None for the server's setting (see
    ``transport.options``); ``TransportOptionError`` on another dialect.
    Database errors propagate as ``sqlalchemy.exc.SQLAlchemyError``."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        hold_connections: bool = False,
        publish_synchronous_commit: str | None = None,
    ) -> None:
        self.engine = engine
        self.hold_connections = hold_connections
        self.dialect = engine.dialect.name
        if publish_synchronous_commit is not None and self.dialect != "postgresql":
            # Refused, not ignored: whoever set it expects faster publishes it would not get.
            raise TransportOptionError(
                "publish_synchronous_commit is PostgreSQL's synchronous_commit, not an option "
                f"on {self.dialect} (on SQLite, see sqlite_synchronous)"
            )
        self.publish_synchronous_commit = publish_synchronous_commit
        self.single = single_statement_engine(engine)
        self.reader = read_only(engine)

    def now(self) -> sa.ColumnElement[float]:
        """The database's now, for one statement (see ``clock.database_now``)."""
        return database_now(self.dialect)

    def execute(
        self,
        statement: sa.Executable,
        connection: sa.Connection | None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        """Run ``statement`` in ``connection``'s transaction (committed with the caller's work;
        SQLite's refused write lock raised as ``DeferredTransactionError``, see ``writing_in``),
        or, without one, in a transaction of its own."""
        if connection is not None:
            with writing_in(connection):
                connection.execute(statement, parameters)
            return
        with self.single.begin() as own:
            own.execute(statement, parameters)

    def scalar(self, statement: sa.Select[Any], connection: sa.Connection | None) -> Any:
        """The first column of ``statement``'s first row (None without rows), read on
        ``connection`` if given, else on a read-only connection."""
        if connection is not None:
            return connection.execute(statement).scalar()
        with self.reader.connect() as own:
            return own.execute(statement).scalar()
