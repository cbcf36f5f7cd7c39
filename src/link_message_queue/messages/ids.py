"""Process identifiers of prooph processing: node names and task list positions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID, uuid4

from .errors import InvalidMessageError

DEFAULT_NODE_NAME = "localhost"
MIN_NODE_NAME_LENGTH = 3

_POSITION = re.compile(
    r"(?P<node>.+):PROCESS_ID:(?P<process>[0-9a-fA-F-]{36})"
    r":TASK_LIST_ID:(?P<task_list>[0-9a-fA-F-]{36}):TASK_POSITION:(?P<position>[0-9]+)",
    re.DOTALL,  # a node name is any string of 3+ characters, line breaks included
)


def validate_node_name(name: object, field: str = "node_name") -> str:
    """Return ``name`` if it is a string of at least ``MIN_NODE_NAME_LENGTH`` characters (prooph's
    ``NodeName`` rule); else raise ``InvalidMessageError`` on ``field``."""
    if not isinstance(name, str) or len(name) < MIN_NODE_NAME_LENGTH:
        raise InvalidMessageError(
            field, f"a node name needs at least {MIN_NODE_NAME_LENGTH} characters"
        )
    return name


@dataclass(frozen=True)
class TaskListPosition:
    """``<node>:PROCESS_ID:<uuid>:TASK_LIST_ID:<uuid>:TASK_POSITION:<n>``, positions from 1."""

    node_name: str
    process_id: UUID
    task_list_id: UUID
    position: int

    def __post_init__(self) -> None:
        validate_node_name(self.node_name, "processTaskListPosition")
        if self.position < 1:
            raise InvalidMessageError("processTaskListPosition", "positions start at 1")

    @classmethod
    def new(
        cls, node_name: str, process_id: UUID | None = None, position: int = 1
    ) -> TaskListPosition:
        """A position ``position`` (1-based) in a new task list (a fresh task list UUID) of process
        ``process_id`` (a fresh UUID when None) on node ``node_name``."""
        return cls(node_name, process_id or uuid4(), uuid4(), position)

    @classmethod
    def parse(cls, value: object, field: str = "processTaskListPosition") -> TaskListPosition:
        """Parse prooph's text form ``<node>:PROCESS_ID:<uuid>:TASK_LIST_ID:<uuid>:<position>``
        (``str()`` of a position). Raises ``InvalidMessageError`` on ``field`` when ``value`` is not
        one."""
        match = _POSITION.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise InvalidMessageError(field, f"{value!r} is not a task list position")
        try:
            return cls(
                match["node"],
                UUID(match["process"]),
                UUID(match["task_list"]),
                int(match["position"]),
            )
        except ValueError as exc:
            raise InvalidMessageError(
                field, f"{value!r} is not a task list position: {exc}"
            ) from None

    def at(self, position: int) -> TaskListPosition:
        """The position ``position`` of the same task list."""
        return TaskListPosition(self.node_name, self.process_id, self.task_list_id, position)

    @property
    def task_list_key(self) -> str:
        """The task list's identity without the position:
        ``<node>:PROCESS_ID:<uuid>:TASK_LIST_ID:<uuid>``."""
        return f"{self.node_name}:PROCESS_ID:{self.process_id}:TASK_LIST_ID:{self.task_list_id}"

    def __str__(self) -> str:
        return f"{self.task_list_key}:TASK_POSITION:{self.position}"
