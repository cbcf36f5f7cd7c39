"""Reading and writing process state. Every write runs on the caller's connection, inside the
transaction of the consumer step that carries the message: a crash rolls the state back with
the message, which is then delivered again."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..db import ProcessTables, database_now, read_database_now

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
PENDING = "pending"


@dataclass(frozen=True)
class ProcessRow:
    """A process as stored: its ``id`` and ``task_list_id`` (UUID strings), start message ``name``,
    ``process_type``, ``definition`` (JSON), ``status`` (running, succeeded, failed), the parent's
    task list position for a sub-process, and times in Unix seconds."""

    id: str
    task_list_id: str
    name: str
    process_type: str
    definition: dict[str, Any]
    status: str
    parent_position: str | None
    started_at: float
    finished_at: float | None


@dataclass(frozen=True)
class TaskRow:
    """A process task as stored: ``position`` (from 1), ``task_type``, ``status`` (pending, running,
    succeeded, failed), its ``log`` entries (``{at, level, code, message}``), sub-process counts,
    and times in Unix seconds."""

    process_id: str
    position: int
    task_type: str
    status: str
    log: list[dict[str, Any]]
    sub_processes: int
    sub_processes_done: int
    sub_processes_failed: int
    started_at: float | None
    finished_at: float | None


class ProcessState:
    """Reads and writes of the process tables, always on the caller's ``connection`` (so they commit
    with the step's work). Times are the database's clock, in Unix seconds. Database errors
    propagate."""

    def __init__(self, tables: ProcessTables) -> None:
        self.tables = tables

    # -- writing (on the step's connection) ------------------------------------------------

    def create(
        self,
        connection: sa.Connection,
        *,
        process_id: str,
        task_list_id: str,
        name: str,
        process_type: str,
        definition: dict[str, Any],
        task_types: list[str],
        parent_position: str | None,
    ) -> None:
        """Insert a running process and its tasks (pending, one per ``task_types`` entry, positions
        from 1)."""
        # The database's clock (as every time one process writes and another reads): a
        # process started on one host and finished on another has a true duration.
        now = database_now(connection.dialect.name)
        connection.execute(
            sa.insert(self.tables.process).values(
                id=process_id,
                task_list_id=task_list_id,
                name=name,
                process_type=process_type,
                definition=json.dumps(definition),
                status=RUNNING,
                parent_position=parent_position,
                started_at=now,
            )
        )
        connection.execute(
            sa.insert(self.tables.task),
            [
                {
                    "process_id": process_id,
                    "position": position,
                    "task_type": task_type,
                    "status": PENDING,
                    "log": "[]",
                }
                for position, task_type in enumerate(task_types, 1)
            ],
        )

    def lock(self, connection: sa.Connection, process_id: str) -> ProcessRow | None:
        """The process, locked for the rest of the transaction (PostgreSQL: the row; SQLite's
        write transaction locks the database), so answers for one process never interleave."""
        process = self.tables.process
        statement = sa.select(process).where(process.c.id == process_id)
        if connection.dialect.name != "sqlite":
            statement = statement.with_for_update()
        row = connection.execute(statement).one_or_none()
        return None if row is None else _process(row)

    def task(self, connection: sa.Connection, process_id: str, position: int) -> TaskRow | None:
        """The task at ``position`` of process ``process_id``, or None."""
        task = self.tables.task
        row = connection.execute(
            sa.select(task).where(task.c.process_id == process_id, task.c.position == position)
        ).one_or_none()
        return None if row is None else _task(row)

    def set_task(
        self, connection: sa.Connection, process_id: str, position: int, **values: Any
    ) -> None:
        """Update the task's columns with ``values``; a ``status`` of running or succeeded/failed
        also sets ``started_at`` or ``finished_at`` (database time) unless given."""
        status = values.get("status")
        if status == RUNNING:
            values.setdefault("started_at", database_now(connection.dialect.name))
        elif status in (SUCCEEDED, FAILED):
            values.setdefault("finished_at", database_now(connection.dialect.name))
        task = self.tables.task
        connection.execute(
            sa.update(task)
            .where(task.c.process_id == process_id, task.c.position == position)
            .values(**values)
        )

    def log(
        self,
        connection: sa.Connection,
        process_id: str,
        position: int,
        *,
        level: str,
        code: int,
        message: str,
    ) -> None:
        """Append a log entry (``level``, ``code``, ``message``, stamped with the database's time
        as the process's own times are) to the task; no effect if the task does not exist."""
        current = self.task(connection, process_id, position)
        if current is None:
            return
        at = read_database_now(connection)
        entry = {"at": at, "level": level, "code": code, "message": message}
        self.set_task(connection, process_id, position, log=json.dumps([*current.log, entry]))

    def sub_process_ended(
        self, connection: sa.Connection, process_id: str, position: int, *, succeeded: bool
    ) -> TaskRow:
        """Count one more ended sub-process of the task (and one more failed unless ``succeeded``);
        return the updated task."""
        task = self.tables.task
        connection.execute(
            sa.update(task)
            .where(task.c.process_id == process_id, task.c.position == position)
            .values(
                sub_processes_done=task.c.sub_processes_done + 1,
                sub_processes_failed=task.c.sub_processes_failed + (0 if succeeded else 1),
            )
        )
        row = self.task(connection, process_id, position)
        assert row is not None  # the caller holds the process lock and read the task
        return row

    def finish(self, connection: sa.Connection, process_id: str, status: str) -> None:
        """Set the process's final ``status`` and its ``finished_at`` (database time)."""
        process = self.tables.process
        connection.execute(
            sa.update(process)
            .where(process.c.id == process_id)
            .values(status=status, finished_at=database_now(connection.dialect.name))
        )

    # -- reading (CLI) ---------------------------------------------------------------------

    def processes(
        self, connection: sa.Connection, limit: int = 50, *, sub_processes: bool = True
    ) -> list[ProcessRow]:
        """The ``limit`` most recently started processes, newest first; top-level only unless
        ``sub_processes``."""
        process = self.tables.process
        statement = sa.select(process).order_by(process.c.started_at.desc()).limit(limit)
        if not sub_processes:
            statement = statement.where(process.c.parent_position.is_(None))
        return [_process(row) for row in connection.execute(statement)]

    def get(self, connection: sa.Connection, process_id: str) -> ProcessRow | None:
        """The process with id ``process_id``, or None."""
        process = self.tables.process
        row = connection.execute(sa.select(process).where(process.c.id == process_id)).first()
        return None if row is None else _process(row)

    def find(self, connection: sa.Connection, process_id: str) -> ProcessRow | None:
        """The one process whose id starts with ``process_id``; None if none or several do."""
        process = self.tables.process
        statement = sa.select(process).where(process.c.id.like(f"{process_id}%"))
        rows = connection.execute(statement.limit(2)).all()
        return _process(rows[0]) if len(rows) == 1 else None

    def tasks(self, connection: sa.Connection, process_id: str) -> list[TaskRow]:
        """The tasks of process ``process_id``, by position."""
        task = self.tables.task
        rows = connection.execute(
            sa.select(task).where(task.c.process_id == process_id).order_by(task.c.position)
        )
        return [_task(row) for row in rows]

    def sub_processes(self, connection: sa.Connection, process: ProcessRow) -> list[ProcessRow]:
        """The sub-processes ``process`` started, in the order they started."""
        table = self.tables.process
        rows = connection.execute(
            sa.select(table)
            .where(table.c.parent_position.like(f"%:PROCESS_ID:{process.id}:%"))
            .order_by(table.c.started_at, table.c.id)
        )
        return [_process(row) for row in rows]

    def children(self, connection: sa.Connection, process: ProcessRow) -> dict[str, int]:
        """Status counts of the sub-processes a process started."""
        table = self.tables.process
        pattern = f"%:PROCESS_ID:{process.id}:%"
        rows = connection.execute(
            sa.select(table.c.status, sa.func.count())
            .where(table.c.parent_position.like(pattern))
            .group_by(table.c.status)
        )
        return {status: int(count) for status, count in rows}


def _process(row: sa.Row[Any]) -> ProcessRow:
    return ProcessRow(
        id=row.id,
        task_list_id=row.task_list_id,
        name=row.name,
        process_type=row.process_type,
        definition=json.loads(row.definition),
        status=row.status,
        parent_position=row.parent_position,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _task(row: sa.Row[Any]) -> TaskRow:
    return TaskRow(
        process_id=row.process_id,
        position=row.position,
        task_type=row.task_type,
        status=row.status,
        log=json.loads(row.log),
        sub_processes=row.sub_processes,
        sub_processes_done=row.sub_processes_done,
        sub_processes_failed=row.sub_processes_failed,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )
