"""``WorkflowMessageHandler``: the base of handlers that collect and process data, as prooph's
``AbstractWorkflowMessageHandler``. A subclass answers a collect-data command with the data
and a process-data command once it processed it; an exception becomes an error LogMessage for
the processor, which fails the task — except the transient failures in ``retry_on``, which
the consumer retries. The payload is validated before the subclass sees it.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from ..engine import DispatchContext
from ..messages import LogCode, LogMessage, ProcessingMessage, WorkflowMessage, WorkflowStep
from .errors import InvalidPayloadError, ProcessorError
from .types import TypeRegistry

logger = logging.getLogger(__name__)


class WorkflowMessageHandler:
    """Base of a workflow process's service (a source or a target): implement
    :meth:`handle_collect_data` and/or :meth:`handle_process_data`.

    Payloads are validated against ``types`` (a ``TypeRegistry``) before the handler sees them
    and again on the answer. An exception fails the process task: it becomes an error
    ``LogMessage`` and the handler's writes are rolled back to a savepoint. The exceptions in
    ``retry_on`` (database, connection and time-out errors) propagate instead, so the consumer
    retries the message with back-off.
    """

    # Transient failures: these propagate, so the consumer retries the message with back-off
    # (and dead-letters it after the last attempt); every other exception fails the task.
    retry_on: tuple[type[BaseException], ...] = (sa.exc.DBAPIError, ConnectionError, TimeoutError)

    def __init__(self, types: TypeRegistry | None = None) -> None:
        self.types = types or TypeRegistry()

    def handle(self, message: ProcessingMessage, context: DispatchContext) -> None:
        """``MessageHandler.handle``: answer a collect-data or process-data command through the
        ``handle_*`` method, then dispatch the answer. Raises ``ProcessorError`` for any other
        message; ``retry_on`` errors propagate (retried), others become an error ``LogMessage``."""
        if not isinstance(message, WorkflowMessage) or message.step not in (
            WorkflowStep.COLLECT_DATA,
            WorkflowStep.PROCESS_DATA,
        ):
            raise ProcessorError(
                f"{type(self).__name__} takes collect-data and process-data commands, "
                f"not {message.name}"
            )
        try:
            answer = self._answer(message, context)
        except self.retry_on:
            raise  # the database or a service failed, not the data: retried by the consumer
        except Exception as exc:
            if message.process_task_list_position is None:
                raise
            logger.warning(
                "%s failed on %s: %s: %s",
                type(self).__name__,
                message.name,
                type(exc).__name__,
                exc,
                extra={"action": "handler_failed", "message_uuid": str(message.uuid)},
            )
            failure = LogMessage.from_exception(exc, message)
            if isinstance(exc, InvalidPayloadError):
                failure = LogMessage(
                    failure.origin,
                    failure.process_task_list_position,
                    failure.technical_msg,
                    LogCode.WRONG_MESSAGE_RECEIVED,
                    failure.msg_params,
                )
            context.engine.dispatch(failure, connection=context.connection)
            return
        context.engine.dispatch(answer, connection=context.connection)

    def _answer(self, message: WorkflowMessage, context: DispatchContext) -> WorkflowMessage:
        self._validate(message)
        if context.connection is None:
            return self._checked(message, context)
        # A savepoint: a handler that fails half-way leaves none of its writes behind.
        with context.connection.begin_nested():
            return self._checked(message, context)

    def _checked(self, message: WorkflowMessage, context: DispatchContext) -> WorkflowMessage:
        answer = self._call(message, context)
        self._validate(answer)
        return answer

    def _validate(self, message: WorkflowMessage) -> None:
        if message.payload.type_class in self.types:
            self.types.validate(message.payload.type_class, message.payload.data)

    def _call(self, message: WorkflowMessage, context: DispatchContext) -> WorkflowMessage:
        if message.step is WorkflowStep.COLLECT_DATA:
            return self.handle_collect_data(message, context)
        return self.handle_process_data(message, context)

    def handle_collect_data(
        self, message: WorkflowMessage, context: DispatchContext
    ) -> WorkflowMessage:
        """Answer with ``message.answer_with(Payload(...))``."""
        raise ProcessorError(f"{type(self).__name__} does not collect data")

    def handle_process_data(
        self, message: WorkflowMessage, context: DispatchContext
    ) -> WorkflowMessage:
        """Process ``message.payload`` and answer with
        ``message.answer_with_data_processing_completed()``."""
        raise ProcessorError(f"{type(self).__name__} does not process data")
