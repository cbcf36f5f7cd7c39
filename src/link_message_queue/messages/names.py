"""Message names of prooph processing (``MessageNameUtils``) and of prooph LINK."""

from __future__ import annotations

import re
from enum import Enum

from .errors import InvalidMessageError

WORKFLOW_MESSAGE_PREFIX = "processing-message-"
LOG_MESSAGE_NAME = "processing-log-message"
START_SUB_PROCESS_NAME = "processing-processor-command-start-sub-process"
SUB_PROCESS_FINISHED_NAME = "processing-processor-event-sub-process-finished"
TICK_OCCURRED_NAME = "Prooph\\Link\\Application\\Event\\TickOccurred"

_WORKFLOW_NAME = re.compile(r"processing-message-(?P<type>[^-]+)-(?P<suffix>[^-]+-\w+)")


class WorkflowStep(Enum):
    """The four states of a workflow message; the value is the message name suffix."""

    COLLECT_DATA = "collect-data"
    DATA_COLLECTED = "data-collected"
    PROCESS_DATA = "process-data"
    DATA_PROCESSED = "data-processed"

    @property
    def is_command(self) -> bool:
        """Whether messages of this step are commands (collect-data, process-data) rather than
        events."""
        return self in (WorkflowStep.COLLECT_DATA, WorkflowStep.PROCESS_DATA)


def normalize_type(type_class: str) -> str:
    """The type part of a message name, exactly as PHP's ``MessageNameUtils::normalize``."""
    normalized = type_class.replace(WORKFLOW_MESSAGE_PREFIX, "")
    for removed in ("-", "\\", "/", " "):
        normalized = normalized.replace(removed, "")
    return normalized.lower()


def workflow_message_name(type_class: str, step: WorkflowStep) -> str:
    """prooph's ``MessageNameUtils::getMessageNameFor``: ``processing-message-<normalized
    type>-<step>``. Raises ``InvalidMessageError`` on ``typeClass`` when the type normalizes to
    nothing."""
    type_part = normalize_type(type_class)
    if not type_part:
        raise InvalidMessageError("typeClass", f"{type_class!r} normalizes to an empty name")
    return f"{WORKFLOW_MESSAGE_PREFIX}{type_part}-{step.value}"


def parse_workflow_message_name(name: str, field: str = "name") -> tuple[str, WorkflowStep]:
    """Split a workflow message name into its type part and its step."""
    match = _WORKFLOW_NAME.fullmatch(name)
    if match is None:
        raise InvalidMessageError(field, f"{name!r} is not a workflow message name")
    try:
        step = WorkflowStep(match["suffix"])
    except ValueError:
        raise InvalidMessageError(
            field, f"{name!r} has the unknown suffix {match['suffix']!r}"
        ) from None
    return match["type"], step


def is_workflow_message_name(name: str) -> bool:
    """Whether ``name`` parses as a workflow message name (see ``parse_workflow_message_name``)."""
    try:
        parse_workflow_message_name(name)
    except InvalidMessageError:
        return False
    return True
