"""Bindings of queues to exchanges (table ``{prefix}binding``): kombu's virtual exchange table,
kept in the database so a fanout reaches the queues of every process."""

from __future__ import annotations

import sqlalchemy as sa

from ...db.dialects import insert_ignoring_duplicates
from .connections import Connections


class Bindings:
    """The binding rows in ``table`` (``QueueTables.binding``) reached through ``connections``.
    Database errors propagate as ``sqlalchemy.exc.SQLAlchemyError``."""

    def __init__(self, connections: Connections, table: sa.Table) -> None:
        self._db = connections
        self.table = table

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

    def of_exchange(
        self, exchange: str, connection: sa.Connection | None = None
    ) -> list[tuple[str, str, str, str]]:
        """(exchange type, routing key, pattern, queue) of every binding of ``exchange``, read on
        ``connection`` if given."""
        binding = self.table
        statement = sa.select(
            binding.c.exchange_type, binding.c.routing_key, binding.c.pattern, binding.c.queue
        ).where(binding.c.exchange == exchange)
        if connection is not None:
            return [tuple(row) for row in connection.execute(statement)]
        with self._db.reader.connect() as own:
            return [tuple(row) for row in own.execute(statement)]
