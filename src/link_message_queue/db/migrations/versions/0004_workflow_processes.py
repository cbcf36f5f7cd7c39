"""The workflow processor's processes and tasks.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import context, op

from link_message_queue.processor.schema import process_tables

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    """Create the workflow processor's process and task tables."""
    tables = process_tables(context.config.attributes["table_prefix"])
    tables.metadata.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drop the workflow processor's process and task tables."""
    tables = process_tables(context.config.attributes["table_prefix"])
    tables.metadata.drop_all(op.get_bind(), checkfirst=True)
