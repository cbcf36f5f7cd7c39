"""Every table of link-message-queue, under a configurable prefix: the queue tables
(``QueueTables``) and the workflow processor's (``ProcessTables``). The migrations in
``migrations/`` create them, each revision with DDL of its own; a test checks that the schema
they build equals these models.

``{prefix}message`` holds every message until it is acked: a fetched message stays in the table,
leased to its consumer (``lease_owner``, ``visible_at`` in the future) until it is acked (row
deleted), rejected or its lease runs out. Times are Unix seconds as floats, so the same SQL runs
on every dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sqlalchemy as sa

SCHEMA_REVISION = "0006"

# SQLite only aliases the rowid for INTEGER PRIMARY KEY, not BIGINT.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Tables whose ids are handles held across transactions (a delivery's ack, a dead letter's
# requeue) set sqlite_autoincrement: without it SQLite gives a deleted newest row's id to the
# next row, and a late ack deletes a message it never saw (migration 0006). PostgreSQL and
# MySQL never reuse ids.
# Unix times and durations in seconds: double precision everywhere. (MySQL's FLOAT is single
# precision: a timestamp in it is off by a minute.)
SECONDS: sa.Double[float] = sa.Double()


@dataclass(frozen=True)
class QueueTables:
    """The queue tables for one table-name ``prefix``, on one ``metadata``, as the code reads and
    writes them. The schema itself is created by the Alembic migrations (``db.migrate``)."""

    prefix: str
    metadata: sa.MetaData
    queue: sa.Table
    message: sa.Table
    dead_letter: sa.Table
    processed: sa.Table
    lock: sa.Table
    binding: sa.Table
    consumer: sa.Table
    gauge: sa.Table
    outbox: sa.Table

    @property
    def notify_channel(self) -> str:
        """The PostgreSQL NOTIFY channel a publish signals on."""
        return f"{self.prefix}message"


@cache
def queue_tables(prefix: str) -> QueueTables:
    """The tables (queues, messages, dead letters, processed ids, locks, bindings, consumers,
    gauges, outbox) named ``{prefix}queue``, ``{prefix}message`` and so on. Times are ``SECONDS``
    columns: Unix seconds as floats."""
    metadata = sa.MetaData()
    queue = sa.Table(
        f"{prefix}queue",
        metadata,
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("created_at", SECONDS, nullable=False),
        sa.Column("arguments", sa.Text, nullable=True),
        # Queue lifetime (x-expires, auto-delete): consumers touch it; the cleaner drops
        # queues unused for longer than they asked.
        sa.Column("expires_s", SECONDS, nullable=True),
        sa.Column("message_ttl_s", SECONDS, nullable=True),
        sa.Column("last_used_at", SECONDS, nullable=True),
    )
    message = sa.Table(
        f"{prefix}message",
        metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", SECONDS, nullable=False),
        sa.Column("visible_at", SECONDS, nullable=False),
        sa.Column("expires_at", SECONDS, nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("delivery_count", sa.Integer, nullable=False, server_default="0"),
        sqlite_autoincrement=True,
    )
    sa.Index(f"{prefix}message_claim", message.c.queue, message.c.priority.desc(), message.c.id)
    sa.Index(
        f"{prefix}message_expiry",
        message.c.expires_at,
        postgresql_where=message.c.expires_at.isnot(None),
        sqlite_where=message.c.expires_at.isnot(None),
    )
    dead_letter = sa.Table(
        f"{prefix}dead_letter",
        metadata,
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
        sa.Column("first_attempt_at", SECONDS, nullable=True),
        sa.Column("failed_at", SECONDS, nullable=False),
        sqlite_autoincrement=True,
    )
    # Message uuids whose handler committed: worker mode skips a redelivered duplicate.
    processed = sa.Table(
        f"{prefix}processed_message",
        metadata,
        sa.Column("uuid", sa.String(36), primary_key=True),
        sa.Column("processed_at", SECONDS, nullable=False),
    )
    # Named leases, e.g. "only one consumer step at a time"; they run out if a holder dies.
    lock = sa.Table(
        f"{prefix}lock",
        metadata,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("locked_until", SECONDS, nullable=False),
    )
    # Exchange bindings live in the database, so a queue bound by one process receives what
    # any process publishes (Celery events, remote control, broadcast).
    binding = sa.Table(
        f"{prefix}binding",
        metadata,
        sa.Column("exchange", sa.String(255), primary_key=True),
        sa.Column("queue", sa.String(255), primary_key=True),
        sa.Column("routing_key", sa.String(255), primary_key=True),
        sa.Column("exchange_type", sa.String(16), nullable=False),
        sa.Column("pattern", sa.String(512), nullable=False),
    )
    # Live consumers: each consuming process says every few seconds which queues it is on, so
    # `link-mq status` and the metrics list idle workers too.
    consumer = sa.Table(
        f"{prefix}consumer",
        metadata,
        sa.Column("owner", sa.String(128), primary_key=True),  # host:pid:id
        sa.Column("queues", sa.Text, nullable=False),  # JSON list
        sa.Column("started_at", SECONDS, nullable=False),
        sa.Column("last_seen_at", SECONDS, nullable=False),
    )
    # Figures the bridge records for monitoring (tick lag, consumer-step duration, ...).
    gauge = sa.Table(
        f"{prefix}gauge",
        metadata,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", SECONDS, nullable=False),
        sa.Column("updated_at", SECONDS, nullable=False),
    )
    # With RabbitMQ or Redis as the broker: workflow messages written in the caller's
    # transaction, published by the relay (bridge/outbox.py).
    outbox = sa.Table(
        f"{prefix}outbox",
        metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("countdown_s", SECONDS, nullable=True),  # a retry's back-off
        sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", SECONDS, nullable=False),
        sqlite_autoincrement=True,
    )
    return QueueTables(
        prefix,
        metadata,
        queue,
        message,
        dead_letter,
        processed,
        lock,
        binding,
        consumer,
        gauge,
        outbox,
    )


@dataclass(frozen=True)
class ProcessTables:
    """The workflow processor's tables (``{prefix}process``, ``{prefix}process_task``) on one
    ``metadata``; created by the migrations."""

    metadata: sa.MetaData
    process: sa.Table
    task: sa.Table


@cache
def process_tables(prefix: str) -> ProcessTables:
    """The process and process-task tables with table-name ``prefix``; times are ``SECONDS`` columns
    (Unix seconds, floats)."""
    metadata = sa.MetaData()
    process = sa.Table(
        f"{prefix}process",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("task_list_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),  # the start message's name
        sa.Column("process_type", sa.String(32), nullable=False),
        sa.Column("definition", sa.Text, nullable=False),  # JSON, as configured
        sa.Column("status", sa.String(16), nullable=False),  # running, succeeded, failed
        # A sub-process: its parent's task list position, to which it reports when it ends.
        sa.Column("parent_position", sa.String(255), nullable=True),
        sa.Column("started_at", SECONDS, nullable=False),
        sa.Column("finished_at", SECONDS, nullable=True),
    )
    sa.Index(f"{prefix}process_parent", process.c.parent_position)
    task = sa.Table(
        f"{prefix}process_task",
        metadata,
        sa.Column("process_id", sa.String(36), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),  # from 1
        sa.Column("task_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),  # pending, running, succeeded, failed
        sa.Column("log", sa.Text, nullable=False),  # JSON list of {at, level, code, message}
        # run_sub_process: how many sub-processes it started, and how many ended (and failed).
        sa.Column("sub_processes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sub_processes_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sub_processes_failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("started_at", SECONDS, nullable=True),
        sa.Column("finished_at", SECONDS, nullable=True),
    )
    return ProcessTables(metadata, process, task)
