"""What ``link-mq processes list | show`` prints: processes with their tasks' status and log."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ..db import process_tables
from ..messages import TaskListPosition
from .state import FAILED, ProcessRow, ProcessState, TaskRow

# Sub-processes ``processes show`` lists under each task (failed ones first); the rest are
# counted. ``--json`` has them all.
SHOWN_SUB_PROCESSES = 10


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _duration(process: ProcessRow) -> str:
    if process.finished_at is None:
        return "-"
    return f"{process.finished_at - process.started_at:.2f} s"


class ProcessReport:
    """Read-only reports on the processes in the database (``link-mq processes``). Database errors
    propagate as ``sqlalchemy.exc.SQLAlchemyError``."""

    def __init__(self, engine: sa.Engine, table_prefix: str) -> None:
        self.engine = engine
        self.state = ProcessState(process_tables(table_prefix))

    def list_lines(self, limit: int = 50, *, sub_processes: bool = False) -> list[str]:
        """Tab-separated lines, a header first, of the ``limit`` newest processes (top-level only
        unless ``sub_processes``), with their sub-processes' counts by status."""
        lines = ["id\tstatus\ttype\tstarted\tduration\tsub-processes\tname"]
        with self.engine.connect() as connection:
            for process in self.state.processes(connection, limit, sub_processes=sub_processes):
                children = self.state.children(connection, process)
                counts = sorted(children.items())
                summary = ", ".join(f"{count} {status}" for status, count in counts)
                lines.append(
                    f"{process.id}\t{process.status}\t{process.process_type}\t"
                    f"{_when(process.started_at)}\t{_duration(process)}\t{summary or '-'}\t"
                    f"{process.name}"
                )
        return lines

    def find(self, process_id: str) -> tuple[ProcessRow, list[TaskRow], list[ProcessRow]] | None:
        """The process whose id starts with ``process_id`` (unique), its tasks and the
        sub-processes it started."""
        with self.engine.connect() as connection:
            process = self.state.find(connection, process_id)
            if process is None:
                return None
            return (
                process,
                self.state.tasks(connection, process.id),
                self.state.sub_processes(connection, process),
            )

    def show_text(
        self, process: ProcessRow, tasks: list[TaskRow], sub_processes: list[ProcessRow]
    ) -> str:
        """A process and its tasks (status, sub-process counts, log) as text for the terminal;
        under a task, the ids of the sub-processes it started (up to ``SHOWN_SUB_PROCESSES``,
        failed ones first)."""
        started_by = _by_task(sub_processes)
        lines = [
            f"process {process.id}: {process.status}",
            f"  name:     {process.name}",
            f"  type:     {process.process_type}",
            f"  started:  {_when(process.started_at)}",
            f"  finished: {_when(process.finished_at)} ({_duration(process)})",
            f"  parent:   {process.parent_position or '-'}",
            "tasks:",
        ]
        for task in tasks:
            subs = (
                f" (sub-processes {task.sub_processes_done}/{task.sub_processes}, "
                f"{task.sub_processes_failed} failed)"
                if task.sub_processes
                else ""
            )
            lines.append(f"  {task.position}. {task.task_type}: {task.status}{subs}")
            children = sorted(started_by.get(task.position, []), key=lambda c: c.status != FAILED)
            lines += [
                f"     sub-process {child.id}: {child.status}"
                for child in children[:SHOWN_SUB_PROCESSES]
            ]
            if len(children) > SHOWN_SUB_PROCESSES:
                lines.append(f"     … and {len(children) - SHOWN_SUB_PROCESSES} more (--json)")
            for entry in task.log:
                when, level, code = _when(entry["at"]), entry["level"], entry["code"]
                lines.append(f"     {when} {level} {code}: {entry['message']}")
        return "\n".join(lines)

    @staticmethod
    def as_dict(
        process: ProcessRow, tasks: list[TaskRow], sub_processes: list[ProcessRow]
    ) -> dict[str, Any]:
        """A process, its tasks (each with ``sub_process_ids``: the sub-processes it started)
        and ``sub_processes`` (id, status, times) as a JSON-ready dict (times as Unix
        seconds)."""
        started_by = _by_task(sub_processes)
        return {
            **asdict(process),
            "tasks": [
                {
                    **asdict(task),
                    "sub_process_ids": [child.id for child in started_by.get(task.position, [])],
                }
                for task in tasks
            ],
            "sub_processes": [
                {
                    "id": child.id,
                    "status": child.status,
                    "started_at": child.started_at,
                    "finished_at": child.finished_at,
                }
                for child in sub_processes
            ],
        }


def _by_task(sub_processes: list[ProcessRow]) -> dict[int, list[ProcessRow]]:
    """Sub-processes by the position of the task that started them (from their parent task
    list position)."""
    by_task: dict[int, list[ProcessRow]] = {}
    for child in sub_processes:
        if child.parent_position is not None:
            position = TaskListPosition.parse(child.parent_position).position
            by_task.setdefault(position, []).append(child)
    return by_task
