"""Exchange bindings in the database, and queue lifetimes (x-expires, x-message-ttl).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from link_message_queue.transport.schema import SECONDS, queue_tables

revision = "0003"
down_revision = "0002"

_QUEUE_COLUMNS = ("expires_s", "message_ttl_s", "last_used_at")


def upgrade() -> None:
    """Add the queue lifetime columns (``expires_s``, ``message_ttl_s``, ``last_used_at``) and
    create the binding table."""
    tables = queue_tables(context.config.attributes["table_prefix"])
    existing = {
        column["name"] for column in sa.inspect(op.get_bind()).get_columns(tables.queue.name)
    }
    for name in _QUEUE_COLUMNS:
        if name not in existing:
            op.add_column(tables.queue.name, sa.Column(name, SECONDS, nullable=True))
    tables.binding.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drop the binding table and the queue lifetime columns."""
    tables = queue_tables(context.config.attributes["table_prefix"])
    tables.binding.drop(op.get_bind(), checkfirst=True)
    with op.batch_alter_table(tables.queue.name) as batch:
        for name in _QUEUE_COLUMNS:
            batch.drop_column(name)
