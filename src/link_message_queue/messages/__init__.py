"""The workflow message model of prooph processing, wire-compatible with the PHP original."""

from .codec import (
    AnyMessage,
    ProcessingMessage,
    decode,
    decode_processing_message,
    encode,
    from_remote,
    to_remote,
)
from .errors import InvalidMessageError, MessageError, WorkflowTransitionError
from .ids import DEFAULT_NODE_NAME, TaskListPosition
from .log import LogCode, LogLevel, LogMessage
from .metadata import Metadata, merge_metadata
from .names import (
    LOG_MESSAGE_NAME,
    START_SUB_PROCESS_NAME,
    SUB_PROCESS_FINISHED_NAME,
    TICK_OCCURRED_NAME,
    WorkflowStep,
    normalize_type,
)
from .remote import MessageHeader, MessageType, RemoteMessage
from .subprocess import StartSubProcess, SubProcessFinished
from .tick import TickOccurred
from .workflow import Payload, WorkflowMessage

__all__ = [
    "DEFAULT_NODE_NAME",
    "LOG_MESSAGE_NAME",
    "START_SUB_PROCESS_NAME",
    "SUB_PROCESS_FINISHED_NAME",
    "TICK_OCCURRED_NAME",
    "AnyMessage",
    "InvalidMessageError",
    "LogCode",
    "LogLevel",
    "LogMessage",
    "MessageError",
    "MessageHeader",
    "MessageType",
    "Metadata",
    "Payload",
    "ProcessingMessage",
    "RemoteMessage",
    "StartSubProcess",
    "SubProcessFinished",
    "TaskListPosition",
    "TickOccurred",
    "WorkflowMessage",
    "WorkflowStep",
    "WorkflowTransitionError",
    "decode",
    "decode_processing_message",
    "encode",
    "from_remote",
    "merge_metadata",
    "normalize_type",
    "to_remote",
]
