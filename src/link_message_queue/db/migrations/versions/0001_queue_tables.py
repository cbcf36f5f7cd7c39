"""The queue and message tables.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from link_message_queue.transport.schema import SECONDS, queue_tables

revision = "0001"
down_revision = None


def upgrade() -> None:
    """Create the queue and message tables (and PostgreSQL's autovacuum settings for the message
    table)."""
    tables = queue_tables(context.config.attributes["table_prefix"])
    bind = op.get_bind()
    # The queue table as revision 0001 had it; later revisions add columns.
    op.create_table(
        tables.queue.name,
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("created_at", SECONDS, nullable=False),
        sa.Column("arguments", sa.Text, nullable=True),
    )
    tables.message.create(bind, checkfirst=True)
    if bind.dialect.name == "postgresql":
        # Rows live for milliseconds: vacuum the message table often so dead tuples and index
        # bloat stay bounded under constant churn.
        op.execute(
            f"ALTER TABLE {tables.message.name} SET (autovacuum_vacuum_scale_factor = 0.01, "
            "autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0)"
        )


def downgrade() -> None:
    """Drop the message and queue tables."""
    tables = queue_tables(context.config.attributes["table_prefix"])
    for table in (tables.message, tables.queue):
        table.drop(op.get_bind(), checkfirst=True)
