"""What ``link-mq processes list | show`` prints: processes with their tasks' status and log."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ..db import process_tables
from .state import ProcessRow, ProcessState, TaskRow


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

    def find(self, process_id: str) -> tuple[ProcessRow, list[TaskRow]] | None:
        """The process whose id starts with ``process_id`` (unique), and its tasks."""
        with self.engine.connect() as connection:
            process = self.state.find(connection, process_id)
            if process is None:
                return None
            return process, self.state.tasks(connection, process.id)

    def show_text(self, process: ProcessRow, tasks: list[TaskRow]) -> str:
        """A process and its tasks (status, sub-process counts, log) as text for the terminal."""
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
            for entry in task.log:
                when, level, code = _when(entry["at"]), entry["level"], entry["code"]
                lines.append(f"     {when} {level} {code}: {entry['message']}")
        return "\n".join(lines)

    @staticmethod
    def as_dict(process: ProcessRow, tasks: list[TaskRow]) -> dict[str, Any]:
        """A process and its tasks as a JSON-ready dict (times as Unix seconds)."""
        return {**asdict(process), "tasks": [asdict(task) for task in tasks]}
