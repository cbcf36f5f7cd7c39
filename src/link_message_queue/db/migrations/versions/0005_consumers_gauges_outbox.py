"""Live consumers (heartbeats), monitoring gauges and the outbox (RabbitMQ/Redis brokers).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import context, op

from link_message_queue.transport.schema import queue_tables

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    """Create the live-consumer, gauge and outbox tables."""
    tables = queue_tables(context.config.attributes["table_prefix"])
    for table in (tables.consumer, tables.gauge, tables.outbox):
        table.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drop the outbox, gauge and live-consumer tables."""
    tables = queue_tables(context.config.attributes["table_prefix"])
    for table in (tables.outbox, tables.gauge, tables.consumer):
        table.drop(op.get_bind(), checkfirst=True)
