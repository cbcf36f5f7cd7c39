"""prooph processing's ``LogMessage``: how a handler reports progress or failure to a process."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from uuid import UUID, uuid4

from .errors import InvalidMessageError
from .ids import TaskListPosition
from .metadata import Metadata, validate_metadata
from .names import LOG_MESSAGE_NAME
from .timestamps import now, require_aware
from .workflow import WorkflowMessage


class LogCode(IntEnum):
    """prooph's ``LogMessage`` message codes (HTTP-like: 2xx progress, 4xx wrong input, 5xx
    failure); any other int is allowed too."""

    DEBUG = 0
    WARNING = 100
    PROCESSING_STARTED = 202
    NO_MESSAGE_RECEIVED = 412
    WRONG_MESSAGE_RECEIVED = 415
    UNSUPPORTED_MESSAGE_RECEIVED = 416
    SYSTEM_ERROR = 500
    ITEMS_PROCESSING_FAILED = 501


class LogLevel(IntEnum):
    """A log message's level, derived from its code; the values are Python ``logging``'s levels."""

    DEBUG = 10
    WARNING = 30
    INFO = 20
    ERROR = 40


@dataclass(frozen=True)
class LogMessage:
    """Always an event of version 1; its target is the node of its task list position."""

    origin: str
    process_task_list_position: TaskListPosition
    technical_msg: str
    msg_code: int = LogCode.DEBUG
    msg_params: Metadata = field(default_factory=dict)
    uuid: UUID = field(default_factory=uuid4)
    created_at: datetime = field(default_factory=now)

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise InvalidMessageError("origin", "must be a non-empty string")
        if (
            isinstance(self.msg_code, bool)
            or not isinstance(self.msg_code, int)
            or self.msg_code < 0
        ):
            raise InvalidMessageError("msgCode", "must be a non-negative integer")
        require_aware(self.created_at, "created_at")
        object.__setattr__(self, "msg_params", validate_metadata(self.msg_params, "msgParams"))

    @property
    def name(self) -> str:
        """The message name of every log message (prooph's ``LogMessage`` name)."""
        return LOG_MESSAGE_NAME

    @property
    def target(self) -> str:
        """The node the log message goes to: the node of its process."""
        return self.process_task_list_position.node_name

    @property
    def level(self) -> LogLevel:
        """prooph's rule: below 100 debug, below 200 warning, below 400 info, else error."""
        if self.msg_code < 100:
            return LogLevel.DEBUG
        if self.msg_code < 200:
            return LogLevel.WARNING
        if self.msg_code < 400:
            return LogLevel.INFO
        return LogLevel.ERROR

    @property
    def is_error(self) -> bool:
        """Whether the level is ``ERROR`` (code 400 or above)."""
        return self.level is LogLevel.ERROR

    @classmethod
    def from_exception(cls, exc: BaseException, message: WorkflowMessage) -> LogMessage:
        """An error log for ``message``'s task; the code is the exception's ``code`` if it is
        an error code (≥ 400), else 500 — as prooph's ``LogMessage::logException``."""
        if message.process_task_list_position is None:
            raise InvalidMessageError(
                "processTaskListPosition", f"{message.name} is not connected to a process task"
            )
        code = getattr(exc, "code", 0)
        if isinstance(code, bool) or not isinstance(code, int) or code < 400:
            code = LogCode.SYSTEM_ERROR
        trace = "".join(traceback.format_exception(exc))
        return cls(
            origin=message.target,
            process_task_list_position=message.process_task_list_position,
            technical_msg=str(exc) or type(exc).__name__,
            msg_code=int(code),
            msg_params={"trace": trace, "exception": type(exc).__qualname__},
        )

    @classmethod
    def info_processing_started(cls, message: WorkflowMessage) -> LogMessage:
        """prooph's ``LogMessage::logInfoDataProcessingStarted``: code 202 for ``message``'s task.
        Raises ``InvalidMessageError`` when ``message`` has no task list position."""
        if message.process_task_list_position is None:
            raise InvalidMessageError("processTaskListPosition", "is missing")
        return cls(
            origin=message.target,
            process_task_list_position=message.process_task_list_position,
            technical_msg="Data processing was started",
            msg_code=LogCode.PROCESSING_STARTED,
        )

    @classmethod
    def items_processing_failed(
        cls,
        message: WorkflowMessage,
        successful_items: int,
        failed_items: int,
        failed_messages: list[str],
    ) -> LogMessage:
        """prooph's ``LogMessage::logItemsProcessingFailed``: code 501 with the item counts and
        failure texts in ``msg_params``. Raises ``InvalidMessageError`` when ``message`` has no task
        list position."""
        if message.process_task_list_position is None:
            raise InvalidMessageError("processTaskListPosition", "is missing")
        return cls(
            origin=message.target,
            process_task_list_position=message.process_task_list_position,
            technical_msg=f"Processing for {failed_items} of "
            f"{successful_items + failed_items} items failed",
            msg_code=LogCode.ITEMS_PROCESSING_FAILED,
            msg_params={
                "successful_items": successful_items,
                "failed_items": failed_items,
                "failed_messages": list(failed_messages),
            },
        )
