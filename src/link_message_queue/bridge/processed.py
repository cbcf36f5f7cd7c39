"""Ids of the workflow messages handled from a broker that may deliver twice (worker mode,
RabbitMQ/Redis ticks), in table ``{prefix}processed_message``: recorded in the handler's
transaction, so a redelivered duplicate is skipped."""

from __future__ import annotations

import sqlalchemy as sa

from ..db import database_now
from ..db.dialects import insert_ignoring_duplicates


def mark_processed(connection: sa.Connection, table: sa.Table, message_uuid: str) -> bool:
    """Record ``message_uuid`` in ``table`` (``QueueTables.processed``: uuid, processed_at in Unix
    seconds by the database's clock) in ``connection``'s transaction; False if it was recorded
    before (a duplicate). Database errors propagate as ``sqlalchemy.exc.SQLAlchemyError``."""
    dialect = connection.dialect.name
    statement = insert_ignoring_duplicates(
        dialect, table, {"uuid": message_uuid, "processed_at": database_now(dialect)}
    )
    # RETURNING, not rowcount: psycopg reports -1 for INSERT … ON CONFLICT DO NOTHING.
    inserted = connection.execute(statement.returning(table.c.uuid))
    return inserted.first() is not None
