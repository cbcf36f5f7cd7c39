"""The workflow processor's state in the application database, under the transport's table
prefix: one row per process, one per task. Owned by migration 0004."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sqlalchemy as sa

from ..transport import SECONDS


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
