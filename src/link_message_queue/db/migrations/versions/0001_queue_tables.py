"""The queue and message tables.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from link_message_queue.db.migrations import has_table, table_prefix

revision = "0001"
down_revision = None

# Ids: BIGINT, but INTEGER on SQLite, which aliases the rowid only for INTEGER PRIMARY KEY.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the queue and message tables (and PostgreSQL's autovacuum settings for the message
    table)."""
    prefix = table_prefix()
    # Revision 0003 adds the lifetime columns.
    op.create_table(
        f"{prefix}queue",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("arguments", sa.Text, nullable=True),
    )
    if not has_table(f"{prefix}message"):
        op.create_table(
            f"{prefix}message",
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("queue", sa.String(255), nullable=False),
            sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"),
            sa.Column("payload", sa.Text, nullable=False),
            sa.Column("created_at", sa.Double(), nullable=False),
            sa.Column("visible_at", sa.Double(), nullable=False),
            sa.Column("expires_at", sa.Double(), nullable=True),
            sa.Column("lease_owner", sa.String(128), nullable=True),
            sa.Column("delivery_count", sa.Integer, nullable=False, server_default="0"),
            # Ids are never reused on SQLite either (see 0006, which rebuilds older tables).
            sqlite_autoincrement=True,
        )
        op.create_index(
            f"{prefix}message_expiry",
            f"{prefix}message",
            ["expires_at"],
            postgresql_where=sa.text("expires_at IS NOT NULL"),
            sqlite_where=sa.text("expires_at IS NOT NULL"),
        )
        op.create_index(
            f"{prefix}message_claim",
            f"{prefix}message",
            ["queue", sa.text("priority DESC"), "id"],
        )
    if op.get_bind().dialect.name == "postgresql":
        # Rows live for milliseconds: vacuum the message table often so dead tuples and index
        # bloat stay bounded under constant churn.
        op.execute(
            f"ALTER TABLE {prefix}message SET (autovacuum_vacuum_scale_factor = 0.01, "
            "autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0)"
        )


def downgrade() -> None:
    """Drop the message and queue tables."""
    prefix = table_prefix()
    for name in (f"{prefix}message", f"{prefix}queue"):
        if has_table(name):
            op.drop_table(name)
