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

import sqlalchemy as sa
from alembic import context, op

from link_message_queue.transport.schema import queue_tables

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    """SQLite only: rebuild the message, dead-letter and outbox tables with ``AUTOINCREMENT`` where
    they lack it, so a deleted row's id is never given again."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    tables = queue_tables(context.config.attributes["table_prefix"])
    for table in (tables.message, tables.dead_letter, tables.outbox):
        created_as = bind.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"),
            {"name": table.name},
        ).scalar_one()
        if "AUTOINCREMENT" not in created_as.upper():
            _rebuild_with_autoincrement(bind, table)


def _rebuild_with_autoincrement(bind: sa.Connection, table: sa.Table) -> None:
    """The table as the schema states it now (AUTOINCREMENT, same columns and indexes), filled
    with the old table's rows; the old one dropped. Inside the upgrade's transaction."""
    old = f"{table.name}_before_0006"
    for index in table.indexes:
        op.execute(f"DROP INDEX IF EXISTS {index.name}")
    op.execute(f"ALTER TABLE {table.name} RENAME TO {old}")
    table.create(bind)
    columns = ", ".join(column.name for column in table.columns)
    # Explicit ids raise SQLite's AUTOINCREMENT counter to the largest one copied.
    op.execute(f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM {old}")
    op.execute(f"DROP TABLE {old}")


def downgrade() -> None:
    """Nothing to undo: revision 0005's code runs on AUTOINCREMENT tables as it is."""
