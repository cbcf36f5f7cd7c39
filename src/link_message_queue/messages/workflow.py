"""prooph processing's ``WorkflowMessage`` and its typed ``Payload``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from .errors import InvalidMessageError, WorkflowTransitionError
from .fields import JsonObject, validate_json
from .ids import TaskListPosition
from .metadata import Metadata, merge_metadata, validate_metadata
from .names import (
    WORKFLOW_MESSAGE_PREFIX,
    WorkflowStep,
    normalize_type,
    parse_workflow_message_name,
    workflow_message_name,
)
from .remote import MessageType
from .timestamps import now, require_aware


@dataclass(frozen=True)
class Payload:
    """``{typeClass, data}``: the processing type (a PHP class name on the wire) and its data."""

    type_class: str
    data: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.type_class, str) or not self.type_class:
            raise InvalidMessageError("typeClass", "must be a non-empty string")
        object.__setattr__(self, "data", validate_json(self.data, "data"))

    def to_dict(self) -> JsonObject:
        """The payload as prooph's JSON object: ``{"typeClass", "data"}``."""
        return {"typeClass": self.type_class, "data": self.data}


@dataclass(frozen=True)
class WorkflowMessage:
    """A message that moves data through a workflow: collect-data → data-collected →
    process-data → data-processed. Every transformation returns a new message with a new uuid,
    a new time and ``version + 1``; metadata is merged recursively."""

    name: str
    origin: str
    target: str
    payload: Payload
    uuid: UUID = field(default_factory=uuid4)
    version: int = 1
    created_at: datetime = field(default_factory=now)
    metadata: Metadata = field(default_factory=dict)
    process_task_list_position: TaskListPosition | None = None

    def __post_init__(self) -> None:
        parse_workflow_message_name(self.name)
        for name in ("origin", "target"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InvalidMessageError(name, "must be a non-empty string")
        if self.version < 1:
            raise InvalidMessageError("version", "starts at 1")
        require_aware(self.created_at, "created_at")
        object.__setattr__(self, "metadata", validate_metadata(self.metadata))

    # -- factories -------------------------------------------------------------------------

    @classmethod
    def collect_data_of(
        cls, type_class: str, origin: str, target: str, metadata: Metadata | None = None
    ) -> WorkflowMessage:
        """A collect-data command asking ``target`` for data of ``type_class``."""
        return cls(
            name=workflow_message_name(type_class, WorkflowStep.COLLECT_DATA),
            origin=origin,
            target=target,
            payload=Payload(type_class),
            metadata=metadata or {},
        )

    @classmethod
    def new_data_collected(
        cls, payload: Payload, origin: str, target: str, metadata: Metadata | None = None
    ) -> WorkflowMessage:
        """A data-collected event, the usual start message of a workflow."""
        return cls(
            name=workflow_message_name(payload.type_class, WorkflowStep.DATA_COLLECTED),
            origin=origin,
            target=target,
            payload=payload,
            metadata=metadata or {},
        )

    # -- reading ---------------------------------------------------------------------------

    @property
    def step(self) -> WorkflowStep:
        """The workflow step named in the message name (collect-data, data-collected, process-data,
        data-processed)."""
        return parse_workflow_message_name(self.name)[1]

    @property
    def message_type(self) -> MessageType:
        """Command for the collect-data and process-data steps, event for the others."""
        return MessageType.COMMAND if self.step.is_command else MessageType.EVENT

    @property
    def type_part(self) -> str:
        """The normalized processing type in the message name (prooph's ``MessageNameUtils``)."""
        return parse_workflow_message_name(self.name)[0]

    # -- transformations -------------------------------------------------------------------

    def answer_with(self, payload: Payload, metadata: Metadata | None = None) -> WorkflowMessage:
        """collect-data → data-collected, answered to the origin with the collected data."""
        self._require_step(WorkflowStep.COLLECT_DATA, "answer_with")
        if payload.type_class != self.payload.type_class:
            raise WorkflowTransitionError(
                f"{self.name} asked for {self.payload.type_class}, "
                f"but the answer carries {payload.type_class}"
            )
        return self._next(
            WorkflowStep.DATA_COLLECTED,
            origin=self.target,
            target=self.origin,
            payload=payload,
            metadata=metadata,
            position=self.process_task_list_position,
        )

    def prepare_data_processing(
        self, position: TaskListPosition, target: str, metadata: Metadata | None = None
    ) -> WorkflowMessage:
        """data-collected → process-data, sent on to ``target`` at task ``position``."""
        self._require_step(WorkflowStep.DATA_COLLECTED, "prepare_data_processing")
        return self._next(
            WorkflowStep.PROCESS_DATA,
            origin=self.target,
            target=target,
            payload=self.payload,
            metadata=metadata,
            position=position,
        )

    def answer_with_data_processing_completed(
        self, metadata: Metadata | None = None
    ) -> WorkflowMessage:
        """process-data → data-processed, answered to the origin."""
        self._require_step(WorkflowStep.PROCESS_DATA, "answer_with_data_processing_completed")
        return self._next(
            WorkflowStep.DATA_PROCESSED,
            origin=self.target,
            target=self.origin,
            payload=self.payload,
            metadata=metadata,
            position=self.process_task_list_position,
        )

    def connect_to_process_task(self, position: TaskListPosition) -> WorkflowMessage:
        """A copy connected to the task at ``position`` (prooph's ``connectToProcessTask``). Raises
        ``WorkflowTransitionError`` if this message is already connected to a task."""
        if self.process_task_list_position is not None:
            raise WorkflowTransitionError(
                f"{self.name} is already connected to {self.process_task_list_position}"
            )
        return replace(self, process_task_list_position=position)

    def reconnect_to_process_task(self, position: TaskListPosition) -> WorkflowMessage:
        """A copy, with a new uuid and creation time, connected to the task at ``position``
        (prooph's ``reconnectToProcessTask``)."""
        return replace(self, process_task_list_position=position, uuid=uuid4(), created_at=now())

    def change_processing_type(self, type_class: str) -> WorkflowMessage:
        """A copy whose name and payload carry the processing type ``type_class`` (same step, same
        data). Raises ``InvalidMessageError`` when the type normalizes to nothing."""
        return replace(
            self,
            name=workflow_message_name(type_class, self.step),
            payload=Payload(type_class, self.payload.data),
        )

    def add_metadata(self, metadata: Metadata) -> WorkflowMessage:
        """A copy with ``metadata`` merged over the message's own. Raises ``InvalidMessageError``
        when ``metadata`` is not valid JSON metadata."""
        return replace(self, metadata=merge_metadata(self.metadata, validate_metadata(metadata)))

    def _require_step(self, step: WorkflowStep, action: str) -> None:
        if self.step is not step:
            raise WorkflowTransitionError(f"{action} needs a {step.value} message, not {self.name}")

    def _next(
        self,
        step: WorkflowStep,
        *,
        origin: str,
        target: str,
        payload: Payload,
        metadata: Metadata | None,
        position: TaskListPosition | None,
    ) -> WorkflowMessage:
        return WorkflowMessage(
            name=f"{WORKFLOW_MESSAGE_PREFIX}{self._type_part_for(payload)}-{step.value}",
            origin=origin,
            target=target,
            payload=payload,
            version=self.version + 1,
            metadata=merge_metadata(self.metadata, validate_metadata(metadata or {})),
            process_task_list_position=position,
        )

    def _type_part_for(self, payload: Payload) -> str:
        # Keep the name's type part as it came (it may be a PHP class normalized elsewhere)
        # unless the payload's type class changed.
        if payload.type_class == self.payload.type_class:
            return self.type_part
        return normalize_type(payload.type_class)
