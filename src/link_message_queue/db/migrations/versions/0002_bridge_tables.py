"""Dead letters, processed message ids and named locks for the bridge.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from link_message_queue.db.migrations import has_table, table_prefix

revision = "0002"
down_revision = "0001"

# Ids: BIGINT, but INTEGER on SQLite, which aliases the rowid only for INTEGER PRIMARY KEY.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the dead-letter, processed-id and lock tables."""
    prefix = table_prefix()
    if not has_table(f"{prefix}dead_letter"):
        op.create_table(
            f"{prefix}dead_letter",
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("queue", sa.String(255), nullable=False),
            sa.Column("message_name", sa.String(255), nullable=True),
            sa.Column("message_uuid", sa.String(36), nullable=True),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("reason", sa.String(32), nullable=False),
            sa.Column("exception_type", sa.String(255), nullable=False),
            sa.Column("exception_message", sa.Text, nullable=False),
            sa.Column("traceback", sa.Text, nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("first_attempt_at", sa.Double(), nullable=True),
            sa.Column("failed_at", sa.Double(), nullable=False),
            sqlite_autoincrement=True,  # see 0006
        )
    if not has_table(f"{prefix}processed_message"):
        op.create_table(
            f"{prefix}processed_message",
            sa.Column("uuid", sa.String(36), primary_key=True),
            sa.Column("processed_at", sa.Double(), nullable=False),
        )
    if not has_table(f"{prefix}lock"):
        op.create_table(
            f"{prefix}lock",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("owner", sa.String(128), nullable=True),
            sa.Column("locked_until", sa.Double(), nullable=False),
        )


def downgrade() -> None:
    """Drop the lock, processed-id and dead-letter tables."""
    prefix = table_prefix()
    for name in (f"{prefix}lock", f"{prefix}processed_message", f"{prefix}dead_letter"):
        if has_table(name):
            op.drop_table(name)
