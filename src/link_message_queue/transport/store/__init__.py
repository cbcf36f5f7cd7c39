"""The message store: the SQL the transport runs, split by concern and, for messages, by dialect.

``MessageStore`` only puts the parts together, for one engine and one set of tables:

- ``messages`` (``messages.MessageSQL``): publish, claim, take, ack, release, renew, purge,
  size, expiry; one implementation per dialect (``postgres``, ``sqlite``, ``mysql``, with the
  shared SQL in ``common``), picked once by ``messages.message_sql``.
- ``queues`` (``queues.Queues``): declare, look up, delete, expire queues.
- ``consumers`` (``consumers.Consumers``): heartbeats of live consumers.
- ``bindings`` (``bindings.Bindings``): queues bound to exchanges.
- ``cleaner`` (``cleaner.Cleaner``): the periodic cleanup round.

``connections.Connections`` is how each part reaches the database.
"""

from __future__ import annotations

import sqlalchemy as sa

from ...db import QueueTables
from .bindings import Bindings
from .cleaner import Cleaner
from .connections import Connections
from .consumers import Consumers
from .messages import MessageSQL, message_sql
from .queues import Queues

__all__ = ["MessageSQL", "MessageStore"]


class MessageStore:
    """The transport's SQL on ``engine`` against ``tables`` (``dialect`` is the engine's dialect
    name): ``messages``, ``queues``, ``consumers``, ``bindings`` and ``cleaner`` (see the module
    docstring). Times are Unix seconds (floats) from the database's clock (``db.clock``).
    Raises ``TransportError`` for a dialect without message statements; database errors
    propagate as ``sqlalchemy.exc.SQLAlchemyError``. ``hold_connections`` and
    ``publish_synchronous_commit`` (``TransportOptionError`` off PostgreSQL): see
    ``connections.Connections``."""

    def __init__(
        self,
        engine: sa.Engine,
        tables: QueueTables,
        *,
        hold_connections: bool = False,
        publish_synchronous_commit: str | None = None,
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.dialect = engine.dialect.name
        connections = Connections(
            engine,
            hold_connections=hold_connections,
            publish_synchronous_commit=publish_synchronous_commit,
        )
        self.messages: MessageSQL = message_sql(connections, tables)
        self.queues = Queues(connections, tables)
        self.consumers = Consumers(connections, tables)
        self.bindings = Bindings(connections, tables.binding, self.messages.read_held)
        self.cleaner = Cleaner(self.messages, self.consumers, self.queues)

    def close(self) -> None:
        """Let go of the shared connections the store holds (``MessageSQL.close``); it stays
        usable."""
        self.messages.close()
