"""Exchange bindings in the database, and queue lifetimes (x-expires, x-message-ttl).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from link_message_queue.db.migrations import has_table, table_prefix

revision = "0003"
down_revision = "0002"

_QUEUE_COLUMNS = ("expires_s", "message_ttl_s", "last_used_at")


def upgrade() -> None:
    """Add the queue lifetime columns (``expires_s``, ``message_ttl_s``, ``last_used_at``) and
    create the binding table."""
    prefix = table_prefix()
    existing = {
        column["name"] for column in sa.inspect(op.get_bind()).get_columns(f"{prefix}queue")
    }
    for name in _QUEUE_COLUMNS:
        if name not in existing:
            op.add_column(f"{prefix}queue", sa.Column(name, sa.Double(), nullable=True))
    if not has_table(f"{prefix}binding"):
        op.create_table(
            f"{prefix}binding",
            sa.Column("exchange", sa.String(255), primary_key=True),
            sa.Column("queue", sa.String(255), primary_key=True),
            sa.Column("routing_key", sa.String(255), primary_key=True),
            sa.Column("exchange_type", sa.String(16), nullable=False),
            sa.Column("pattern", sa.String(512), nullable=False),
        )


def downgrade() -> None:
    """Drop the binding table and the queue lifetime columns."""
    prefix = table_prefix()
    if has_table(f"{prefix}binding"):
        op.drop_table(f"{prefix}binding")
    with op.batch_alter_table(f"{prefix}queue") as batch:
        for name in _QUEUE_COLUMNS:
            batch.drop_column(name)
