"""The queue tables, under a configurable prefix. Owned by the migrations in ``migrations/``.

``{prefix}message`` holds every message until it is acked: a fetched message stays in the table,
leased to its consumer (``lease_owner``, ``visible_at`` in the future) until it is acked (row
deleted), rejected or its lease runs out. Times are Unix seconds as floats, so the same SQL runs
on every dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sqlalchemy as sa

SCHEMA_REVISION = "0001"

# SQLite only aliases the rowid for INTEGER PRIMARY KEY, not BIGINT.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


@dataclass(frozen=True)
class QueueTables:
    prefix: str
    metadata: sa.MetaData
    queue: sa.Table
    message: sa.Table

    @property
    def notify_channel(self) -> str:
        """The PostgreSQL NOTIFY channel a publish signals on."""
        return f"{self.prefix}message"


@cache
def queue_tables(prefix: str) -> QueueTables:
    metadata = sa.MetaData()
    queue = sa.Table(
        f"{prefix}queue",
        metadata,
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("arguments", sa.Text, nullable=True),
    )
    message = sa.Table(
        f"{prefix}message",
        metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("visible_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("delivery_count", sa.Integer, nullable=False, server_default="0"),
    )
    sa.Index(f"{prefix}message_claim", message.c.queue, message.c.priority.desc(), message.c.id)
    sa.Index(
        f"{prefix}message_expiry",
        message.c.expires_at,
        postgresql_where=message.c.expires_at.isnot(None),
        sqlite_where=message.c.expires_at.isnot(None),
    )
    return QueueTables(prefix, metadata, queue, message)
