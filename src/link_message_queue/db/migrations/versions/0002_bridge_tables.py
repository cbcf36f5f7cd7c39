"""Dead letters, processed message ids and named locks for the bridge.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import context, op

from link_message_queue.transport.schema import queue_tables

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    """Create the dead-letter, processed-id and lock tables."""
    tables = queue_tables(context.config.attributes["table_prefix"])
    for table in (tables.dead_letter, tables.processed, tables.lock):
        table.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drop the lock, processed-id and dead-letter tables."""
    tables = queue_tables(context.config.attributes["table_prefix"])
    for table in (tables.lock, tables.processed, tables.dead_letter):
        table.drop(op.get_bind(), checkfirst=True)
