"""The processor's own messages: StartSubProcess (a command), SubProcessFinished (an event)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from .errors import InvalidMessageError
from .fields import validate_json
from .ids import TaskListPosition, validate_node_name
from .names import START_SUB_PROCESS_NAME, SUB_PROCESS_FINISHED_NAME
from .timestamps import now, require_aware

if TYPE_CHECKING:
    from .codec import ProcessingMessage


@dataclass(frozen=True)
class StartSubProcess:
    """Asks the processor on node ``target`` to run ``sub_process_definition`` as a child of
    the task at ``parent_task_list_position``."""

    parent_task_list_position: TaskListPosition
    sub_process_definition: dict[str, Any]
    target: str
    sync_log_messages: bool = True
    previous_message: ProcessingMessage | None = None
    uuid: UUID = field(default_factory=uuid4)
    version: int = 1
    created_at: datetime = field(default_factory=now)

    def __post_init__(self) -> None:
        validate_node_name(self.target, "target")
        if not isinstance(self.sub_process_definition, dict):
            raise InvalidMessageError("sub_process_definition", "must be an object")
        validate_json(self.sub_process_definition, "sub_process_definition")
        require_aware(self.created_at, "created_at")

    @property
    def name(self) -> str:
        """The message name of prooph's ``StartSubProcess`` command."""
        return START_SUB_PROCESS_NAME

    @property
    def origin(self) -> str:
        """The node that starts the sub-process: the parent task's node."""
        return self.parent_task_list_position.node_name


@dataclass(frozen=True)
class SubProcessFinished:
    """Tells the parent process (on the node of ``parent_task_list_position``) that a
    sub-process ended, with the last message it saw."""

    processor_node_name: str
    parent_task_list_position: TaskListPosition
    sub_process_id: UUID
    succeed: bool
    last_message: ProcessingMessage
    uuid: UUID = field(default_factory=uuid4)
    version: int = 1
    created_at: datetime = field(default_factory=now)

    def __post_init__(self) -> None:
        validate_node_name(self.processor_node_name, "processor_node_name")
        require_aware(self.created_at, "created_at")

    @property
    def name(self) -> str:
        """The message name of prooph's ``SubProcessFinished`` event."""
        return SUB_PROCESS_FINISHED_NAME

    @property
    def origin(self) -> str:
        """The node that ran the sub-process."""
        return self.processor_node_name

    @property
    def target(self) -> str:
        """The node of the parent process, which the event goes back to."""
        return self.parent_task_list_position.node_name
