"""SQLite: message, dead-letter and outbox ids are never reused (AUTOINCREMENT).

Without AUTOINCREMENT SQLite gives a deleted newest row's id to the next row, so an ack that
comes late (its lease ran out, another consumer took and acked the message) deleted the next
message published. SQLite cannot add AUTOINCREMENT to a table: each table is rebuilt, its rows
and ids kept. Databases made since this revision already have it; PostgreSQL and MySQL never
reuse ids, so nothing changes there.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from link_message_queue.db.migrations import table_prefix

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    """SQLite only: rebuild the message, dead-letter and outbox tables with ``AUTOINCREMENT`` where
    they lack it, so a deleted row's id is never given again."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    prefix = table_prefix()
    rebuilds: dict[str, Callable[[str], None]] = {
        f"{prefix}message": _create_message,
        f"{prefix}dead_letter": _create_dead_letter,
        f"{prefix}outbox": _create_outbox,
    }
    for name, create in rebuilds.items():
        created_as = bind.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"),
            {"name": name},
        ).scalar_one()
        if "AUTOINCREMENT" not in created_as.upper():
            _rebuild(bind, name, create)


def _rebuild(bind: sa.Connection, name: str, create: Callable[[str], None]) -> None:
    """Table ``name`` created anew by ``create(name)`` (AUTOINCREMENT, same columns and indexes),
    filled with the old table's rows; the old one dropped. Inside the upgrade's transaction."""
    old = f"{name}_before_0006"
    indexes = sa.inspect(bind).get_indexes(name)
    for index in indexes:
        op.execute(f"DROP INDEX IF EXISTS {index['name']}")
    op.execute(f"ALTER TABLE {name} RENAME TO {old}")
    create(name)
    columns = ", ".join(column["name"] for column in sa.inspect(bind).get_columns(name))
    # Explicit ids raise SQLite's AUTOINCREMENT counter to the largest one copied.
    op.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM {old}")
    op.execute(f"DROP TABLE {old}")


# The three tables as they are at this revision, on SQLite (INTEGER ids: the rowid).


def _create_message(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("visible_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("delivery_count", sa.Integer, nullable=False, server_default="0"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        f"{name}_expiry", name, ["expires_at"], sqlite_where=sa.text("expires_at IS NOT NULL")
    )
    op.create_index(f"{name}_claim", name, ["queue", sa.text("priority DESC"), "id"])


def _create_dead_letter(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
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
        sqlite_autoincrement=True,
    )


def _create_outbox(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("countdown_s", sa.Double(), nullable=True),
        sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Double(), nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    """Nothing to undo: revision 0005's code runs on AUTOINCREMENT tables as it is."""
