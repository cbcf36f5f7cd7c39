"""Live consumers (heartbeats), monitoring gauges and the outbox (RabbitMQ/Redis brokers).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from link_message_queue.db.migrations import has_table, table_prefix

revision = "0005"
down_revision = "0004"

# Ids: BIGINT, but INTEGER on SQLite, which aliases the rowid only for INTEGER PRIMARY KEY.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the live-consumer, gauge and outbox tables."""
    prefix = table_prefix()
    if not has_table(f"{prefix}consumer"):
        op.create_table(
            f"{prefix}consumer",
            sa.Column("owner", sa.String(128), primary_key=True),
            sa.Column("queues", sa.Text, nullable=False),
            sa.Column("started_at", sa.Double(), nullable=False),
            sa.Column("last_seen_at", sa.Double(), nullable=False),
        )
    if not has_table(f"{prefix}gauge"):
        op.create_table(
            f"{prefix}gauge",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("value", sa.Double(), nullable=False),
            sa.Column("updated_at", sa.Double(), nullable=False),
        )
    if not has_table(f"{prefix}outbox"):
        op.create_table(
            f"{prefix}outbox",
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("queue", sa.String(255), nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("countdown_s", sa.Double(), nullable=True),
            sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
            sa.Column("created_at", sa.Double(), nullable=False),
            sqlite_autoincrement=True,  # see 0006
        )


def downgrade() -> None:
    """Drop the outbox, gauge and live-consumer tables."""
    prefix = table_prefix()
    for name in (f"{prefix}outbox", f"{prefix}gauge", f"{prefix}consumer"):
        if has_table(name):
            op.drop_table(name)
