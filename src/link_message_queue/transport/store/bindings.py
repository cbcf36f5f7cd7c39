"""Bindings of queues to exchanges (table ``{prefix}binding``): kombu's virtual exchange table,
kept in the database so a fanout reaches the queues of every process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from ...db.dialects import insert_ignoring_duplicates
from .connections import Connections

# (exchange type, routing key, pattern, queue) of one binding.
Binding = tuple[str, str, str, str]
# ``MessageSQL.read_held``: a read on the process's shared held connection, None when it
# cannot run there.
ReadHeld = Callable[[str, dict[str, Any]], list[tuple[Any, ...]] | None]


class Bindings:
    """The binding rows in ``table`` (``QueueTables.binding``) reached through ``connections``.
    Database errors propagate as ``sqlalchemy.exc.SQLAlchemyError``."""

    def __init__(
        self, connections: Connections, table: sa.Table, read_held: ReadHeld | None = None
    ) -> None:
        self._db = connections
        self.table = table
        self._read_held = read_held
        self._of_exchange = sa.select(
            table.c.exchange_type, table.c.routing_key, table.c.pattern, table.c.queue
        ).where(table.c.exchange == sa.bindparam("exchange"))
        # The same read for the process's shared put connection, in its driver's placeholders
        # (psycopg's %(exchange)s; sqlite3's :exchange, named rather than qmark).
        dialect = connections.engine.dialect
        if dialect.name == "sqlite":
            dialect = sqlite.dialect(paramstyle="named")
        self._of_exchange_sql = str(self._of_exchange.compile(dialect=dialect))

    def bind(
        self,
        exchange: str,
        *,
        exchange_type: str,
        routing_key: str,
        pattern: str,
        queue: str,
        connection: sa.Connection | None = None,
    ) -> None:
        """Record a binding of ``queue`` to ``exchange`` (kombu's virtual exchange table:
        ``exchange_type``, ``routing_key``, ``pattern``), in ``connection``'s transaction if
        given; an existing identical binding is left as it is."""
        values = {
            "exchange": exchange,
            "queue": queue,
            "routing_key": routing_key,
            "exchange_type": exchange_type,
            "pattern": pattern,
        }
        statement = insert_ignoring_duplicates(self._db.dialect, self.table, values)
        self._db.execute(statement, connection)

    def unbind(self, exchange: str, queue: str, routing_key: str) -> None:
        """Delete the binding of ``queue`` to ``exchange`` with ``routing_key``; no error if there
        is none."""
        binding = self.table
        self._db.execute(
            sa.delete(binding).where(
                binding.c.exchange == exchange,
                binding.c.queue == queue,
                binding.c.routing_key == routing_key,
            ),
            None,
        )

    def of_exchange(self, exchange: str, connection: sa.Connection | None = None) -> list[Binding]:
        """(exchange type, routing key, pattern, queue) of every binding of ``exchange``, read on
        ``connection`` if given, else on the process's shared held connection where there is
        one (no pool checkout: this runs once per routed publish), else through the pool."""
        parameters = {"exchange": exchange}
        if connection is not None:
            return [tuple(row) for row in connection.execute(self._of_exchange, parameters)]
        if self._read_held is not None:
            rows = self._read_held(self._of_exchange_sql, parameters)
            if rows is not None:
                return cast(list[Binding], rows)
        with self._db.reader.connect() as own:
            return [tuple(row) for row in own.execute(self._of_exchange, parameters)]
