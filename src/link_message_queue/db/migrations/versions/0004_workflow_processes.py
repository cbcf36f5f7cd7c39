"""The workflow processor's processes and tasks.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from link_message_queue.db.migrations import has_table, table_prefix

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    """Create the workflow processor's process and task tables."""
    prefix = table_prefix()
    if not has_table(f"{prefix}process"):
        op.create_table(
            f"{prefix}process",
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("task_list_id", sa.String(36), nullable=False),
            sa.Column("name", sa.String(255), nullable=False),
            sa.Column("process_type", sa.String(32), nullable=False),
            sa.Column("definition", sa.Text, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("parent_position", sa.String(255), nullable=True),
            sa.Column("started_at", sa.Double(), nullable=False),
            sa.Column("finished_at", sa.Double(), nullable=True),
        )
        op.create_index(f"{prefix}process_parent", f"{prefix}process", ["parent_position"])
    if not has_table(f"{prefix}process_task"):
        op.create_table(
            f"{prefix}process_task",
            sa.Column("process_id", sa.String(36), primary_key=True),
            sa.Column("position", sa.Integer, primary_key=True),
            sa.Column("task_type", sa.String(32), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("log", sa.Text, nullable=False),
            sa.Column("sub_processes", sa.Integer, nullable=False, server_default="0"),
            sa.Column("sub_processes_done", sa.Integer, nullable=False, server_default="0"),
            sa.Column("sub_processes_failed", sa.Integer, nullable=False, server_default="0"),
            sa.Column("started_at", sa.Double(), nullable=True),
            sa.Column("finished_at", sa.Double(), nullable=True),
        )


def downgrade() -> None:
    """Drop the workflow processor's process and task tables."""
    prefix = table_prefix()
    for name in (f"{prefix}process_task", f"{prefix}process"):
        if has_table(name):
            op.drop_table(name)
