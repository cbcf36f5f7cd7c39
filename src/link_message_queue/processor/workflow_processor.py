"""The workflow processor: the target for the node name. It starts a process on its start
message, sends each task's message to its handler through the engine (so, with the workflow
processor's queue enabled, every step goes through the queue), advances on the answers and
finishes the process — reporting to its parent when it is a sub-process.

Every state change runs on the dispatch's connection: inside a consumer step, in the step's
transaction, so a crash never leaves a half-advanced process. Answers for a task that is not
running any more (duplicates, late arrivals) are logged and ignored.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from ..db import process_tables
from ..engine import DispatchContext
from ..messages import (
    LogCode,
    LogMessage,
    Payload,
    ProcessingMessage,
    StartSubProcess,
    SubProcessFinished,
    TaskListPosition,
    WorkflowMessage,
    WorkflowStep,
    WorkflowTransitionError,
)
from ..messages.metadata import merge_metadata
from .definitions import (
    CHUNK,
    COLLECT_DATA,
    FOR_EACH,
    MANIPULATE_PAYLOAD,
    PROCESS_DATA,
    RUN_SUB_PROCESS,
    ProcessDefinition,
    Task,
    parse_definition,
)
from .errors import InvalidPayloadError, ProcessorError
from .state import FAILED, RUNNING, SUCCEEDED, ProcessRow, ProcessState
from .types import TypeRegistry

logger = logging.getLogger(__name__)

_ANSWER_FOR = {COLLECT_DATA: WorkflowStep.DATA_COLLECTED, PROCESS_DATA: WorkflowStep.DATA_PROCESSED}


class WorkflowProcessor:
    """Register it as ``link.workflow_processor`` (the runtime does, given ``PROCESSES``)."""

    def __init__(
        self,
        definitions: Mapping[str, ProcessDefinition],
        *,
        node_name: str,
        engine: sa.Engine,
        table_prefix: str,
        types: TypeRegistry | None = None,
    ) -> None:
        self.definitions = dict(definitions)
        self.node_name = node_name
        self.engine = engine
        self.state = ProcessState(process_tables(table_prefix))
        self.types = types or TypeRegistry()

    # -- entry -----------------------------------------------------------------------------

    def handle(self, message: ProcessingMessage, context: DispatchContext) -> None:
        """``MessageHandler.handle``: start a process (a start message), advance one (an answer, a
        log message, a sub-process event), in the step's transaction or one of its own. Raises
        ``ProcessorError`` for a message it does not take or a start message no process starts with.
        """
        with self._transaction(context) as joined:
            if isinstance(message, StartSubProcess):
                self._start_sub_process(message, joined)
            elif isinstance(message, SubProcessFinished):
                self._sub_process_finished(message, joined)
            elif isinstance(message, LogMessage):
                self._log_received(message, joined)
            elif isinstance(message, WorkflowMessage):
                if message.process_task_list_position is None:
                    self._start(message, joined)
                else:
                    self._answer(message, joined)
            else:
                raise ProcessorError(f"the workflow processor does not take {message.name}")

    @contextmanager
    def _transaction(self, context: DispatchContext) -> Iterator[DispatchContext]:
        # Inside a consumer step (or a caller's transaction): join it. Otherwise (a start
        # message dispatched directly by the application): one transaction of its own.
        if context.connection is not None:
            yield context
            return
        with self.engine.begin() as connection:
            yield replace(context, connection=connection)

    # -- starting --------------------------------------------------------------------------

    def _start(self, message: WorkflowMessage, context: DispatchContext) -> None:
        definition = self.definitions.get(message.name)
        if definition is None:
            raise ProcessorError(
                f"no process starts with {message.name}; configured start messages: "
                f"{sorted(self.definitions) or 'none'}"
            )
        self._run(definition, message, None, context)

    def _start_sub_process(self, message: StartSubProcess, context: DispatchContext) -> None:
        parent = message.parent_task_list_position
        parent_row = self.state.get(_connection(context), str(parent.process_id))
        name = f"{parent_row.name if parent_row else parent.node_name} > sub-process"
        definition = parse_definition(name, message.sub_process_definition)
        self._run(definition, message.previous_message, str(parent), context)

    def _run(
        self,
        definition: ProcessDefinition,
        start_message: ProcessingMessage | None,
        parent_position: str | None,
        context: DispatchContext,
    ) -> None:
        process_id, task_list_id = uuid.uuid4(), uuid.uuid4()
        self.state.create(
            _connection(context),
            process_id=str(process_id),
            task_list_id=str(task_list_id),
            name=definition.name,
            process_type=definition.process_type,
            definition=definition.to_config(),
            task_types=[task.task_type for task in definition.tasks],
            parent_position=parent_position,
        )
        logger.info(
            "process %s started: %s (%s)",
            process_id,
            definition.name,
            definition.process_type,
            extra={"action": "process_started", "process_id": str(process_id)},
        )
        position = TaskListPosition(self.node_name, process_id, task_list_id, 1)
        self._perform(definition, position, start_message, context)

    # -- performing tasks ------------------------------------------------------------------

    def _perform(
        self,
        definition: ProcessDefinition,
        position: TaskListPosition,
        previous: ProcessingMessage | None,
        context: DispatchContext,
    ) -> None:
        """Run the task at ``position`` with the message the previous task ended with; past
        the last task, finish the process."""
        if position.position > len(definition.tasks):
            self._finish(position, SUCCEEDED, previous, context)
            return
        task = definition.tasks[position.position - 1]
        connection = _connection(context)
        process_id = str(position.process_id)
        self.state.set_task(connection, process_id, position.position, status=RUNNING)
        # Only preparing the task can fail it here; what its handler does is the handler's.
        try:
            if task.task_type == MANIPULATE_PAYLOAD:
                manipulated = self._manipulate(task, previous)
            elif task.task_type == RUN_SUB_PROCESS:
                starts = self._sub_process_inputs(definition, previous)
            else:
                outgoing = self._task_message(task, position, previous)
        except (ProcessorError, WorkflowTransitionError, ValueError) as exc:
            self._fail(position, _log_for(exc, position, _code_of(exc)), context)
            return
        if task.task_type == MANIPULATE_PAYLOAD:
            self.state.set_task(connection, process_id, position.position, status=SUCCEEDED)
            self._perform(definition, position.at(position.position + 1), manipulated, context)
        elif task.task_type == RUN_SUB_PROCESS:
            self._run_sub_processes(
                definition, task, position, previous, starts=starts, context=context
            )
        else:
            # State first: a handler answering synchronously advances the process itself.
            context.engine.dispatch(outgoing, self.node_name, connection=connection)

    def _task_message(
        self, task: Task, position: TaskListPosition, previous: ProcessingMessage | None
    ) -> WorkflowMessage:
        if task.task_type == COLLECT_DATA:
            inherited = previous.metadata if isinstance(previous, WorkflowMessage) else {}
            return WorkflowMessage.collect_data_of(
                task.config["processing_type"],
                origin=self.node_name,
                target=task.config["source"],
                metadata=merge_metadata(inherited, task.metadata),
            ).connect_to_process_task(position)
        # process_data: the data collected before, sent on to the target.
        if not isinstance(previous, WorkflowMessage) or previous.step not in (
            WorkflowStep.DATA_COLLECTED,
            WorkflowStep.DATA_PROCESSED,
        ):
            name = previous.name if previous is not None else "nothing"
            raise ProcessorError(f"process_data needs collected data, but the process has {name}")
        allowed = task.config["allowed_types"]
        if previous.payload.type_class not in allowed:
            raise InvalidPayloadError(
                "typeClass", f"{previous.payload.type_class!r} is not one of {allowed}"
            )
        self._validate(previous)
        if previous.step is WorkflowStep.DATA_PROCESSED:
            # Processed once already: present it as collected data to the next target.
            previous = WorkflowMessage.new_data_collected(
                previous.payload, previous.origin, previous.target, previous.metadata
            )
        return previous.prepare_data_processing(position, task.config["target"], task.metadata)

    def _manipulate(self, task: Task, previous: ProcessingMessage | None) -> WorkflowMessage:
        if not isinstance(previous, WorkflowMessage):
            raise ProcessorError("manipulate_payload needs a workflow message to work on")
        data = task.manipulation()(previous.payload.data)
        manipulated = replace(previous, payload=Payload(previous.payload.type_class, data))
        self._validate(manipulated)
        return manipulated

    def _run_sub_processes(
        self,
        definition: ProcessDefinition,
        task: Task,
        position: TaskListPosition,
        previous: ProcessingMessage | None,
        *,
        starts: list[ProcessingMessage | None],
        context: DispatchContext,
    ) -> None:
        connection = _connection(context)
        # The count is written before any start is sent: a sub-process that finishes at once
        # (in this transaction) is counted against it.
        self.state.set_task(
            connection, str(position.process_id), position.position, sub_processes=len(starts)
        )
        if not starts:
            self.state.set_task(
                connection, str(position.process_id), position.position, status=SUCCEEDED
            )
            self._perform(definition, position.at(position.position + 1), previous, context)
            return
        for start in starts:
            command = StartSubProcess(
                parent_task_list_position=position,
                sub_process_definition=dict(task.config["process_definition"]),
                target=task.config["target_node_name"],
                sync_log_messages=bool(task.config.get("sync_log_messages", True)),
                previous_message=start,
            )
            context.engine.dispatch(command, self.node_name, connection=connection)

    def _sub_process_inputs(
        self, definition: ProcessDefinition, previous: ProcessingMessage | None
    ) -> list[ProcessingMessage | None]:
        """The start message of each sub-process: one (linear), one per item (for-each), one
        per chunk of ``limit`` items (chunk)."""
        if definition.process_type == FOR_EACH:
            if not isinstance(previous, WorkflowMessage) or not isinstance(
                previous.payload.data, list
            ):
                raise InvalidPayloadError("data", "a for-each process needs a collection")
            self._validate(previous)
            item_type = self._item_type(previous.payload.type_class)
            return [
                WorkflowMessage.new_data_collected(
                    Payload(item_type, item), previous.origin, self.node_name, previous.metadata
                )
                for item in previous.payload.data
            ]
        if definition.process_type == CHUNK:
            if not isinstance(previous, WorkflowMessage):
                raise ProcessorError("a chunk process starts with a workflow message")
            offset, limit, total = _chunking(previous.metadata)
            return [
                previous.add_metadata({"offset": start, "limit": limit, "total_items": total})
                for start in range(offset, total, limit)
            ]
        return [previous]

    def _item_type(self, collection_type: str) -> str:
        if collection_type in self.types:
            item_type = self.types.get(collection_type).item_type
            if item_type is not None:
                return item_type
        return "dictionary"

    # -- answers ---------------------------------------------------------------------------

    def _answer(self, message: WorkflowMessage, context: DispatchContext) -> None:
        position = message.process_task_list_position
        assert position is not None
        located = self._locate(position, context, message.name)
        if located is None:
            return
        process, definition = located
        task = definition.tasks[position.position - 1]
        expected = _ANSWER_FOR.get(task.task_type)
        if message.step is not expected:
            wrong = ProcessorError(
                f"task {position.position} ({task.task_type}) got {message.name}, "
                f"expected a {expected.value if expected else 'sub-process'} answer"
            )
            self._fail(position, _log_for(wrong, position, LogCode.WRONG_MESSAGE_RECEIVED), context)
            return
        try:
            self._validate(message)
        except InvalidPayloadError as exc:
            self._fail(position, _log_for(exc, position, LogCode.WRONG_MESSAGE_RECEIVED), context)
            return
        connection = _connection(context)
        self.state.set_task(connection, process.id, position.position, status=SUCCEEDED)
        self._perform(definition, position.at(position.position + 1), message, context)

    def _log_received(self, message: LogMessage, context: DispatchContext) -> None:
        position = message.process_task_list_position
        connection = _connection(context)
        self.state.log(
            connection,
            str(position.process_id),
            position.position,
            level=message.level.name.lower(),
            code=message.msg_code,
            message=message.technical_msg,
        )
        if message.is_error:
            located = self._locate(position, context, message.name)
            if located is not None:
                self._fail(position, message, context, logged=True)

    def _sub_process_finished(self, message: SubProcessFinished, context: DispatchContext) -> None:
        position = message.parent_task_list_position
        located = self._locate(position, context, message.name)
        if located is None:
            return
        process, definition = located
        connection = _connection(context)
        if isinstance(message.last_message, LogMessage) and message.last_message.is_error:
            self.state.log(
                connection,
                process.id,
                position.position,
                level="error",
                code=message.last_message.msg_code,
                message=f"sub-process {message.sub_process_id} failed: "
                f"{message.last_message.technical_msg}",
            )
        task = self.state.sub_process_ended(
            connection, process.id, position.position, succeeded=message.succeed
        )
        if task.sub_processes_done < task.sub_processes:
            return
        if task.sub_processes_failed:
            failure = ProcessorError(
                f"{task.sub_processes_failed} of {task.sub_processes} sub-processes failed"
            )
            log = _log_for(failure, position, LogCode.ITEMS_PROCESSING_FAILED)
            self._fail(position, log, context)
            return
        self.state.set_task(connection, process.id, position.position, status=SUCCEEDED)
        self._perform(definition, position.at(position.position + 1), message.last_message, context)

    def _locate(
        self, position: TaskListPosition, context: DispatchContext, what: str
    ) -> tuple[ProcessRow, ProcessDefinition] | None:
        """The running process and its definition, with the task at ``position`` running;
        None (logged) for an answer that comes too late or twice."""
        if position.node_name != self.node_name:
            raise ProcessorError(
                f"{what} is for node {position.node_name!r}, not {self.node_name!r}"
            )
        connection = _connection(context)
        process = self.state.lock(connection, str(position.process_id))
        if process is None:
            raise ProcessorError(f"{what} names process {position.process_id}, which is unknown")
        task = self.state.task(connection, process.id, position.position)
        if process.status != RUNNING or task is None or task.status != RUNNING:
            logger.info(
                "ignored %s for %s: the task is %s, the process %s",
                what,
                position,
                task.status if task else "missing",
                process.status,
                extra={"action": "ignored_answer", "process_id": process.id},
            )
            return None
        return process, parse_definition(process.name, process.definition)

    # -- ending ----------------------------------------------------------------------------

    def _fail(
        self,
        position: TaskListPosition,
        log: LogMessage,
        context: DispatchContext,
        *,
        logged: bool = False,
    ) -> None:
        connection = _connection(context)
        process_id = str(position.process_id)
        if not logged:
            self.state.log(
                connection,
                process_id,
                position.position,
                level="error",
                code=log.msg_code,
                message=log.technical_msg,
            )
        self.state.set_task(connection, process_id, position.position, status=FAILED)
        self._finish(position, FAILED, log, context)

    def _finish(
        self,
        position: TaskListPosition,
        status: str,
        last_message: ProcessingMessage | None,
        context: DispatchContext,
    ) -> None:
        connection = _connection(context)
        process_id = str(position.process_id)
        self.state.finish(connection, process_id, status)
        logger.info(
            "process %s %s",
            process_id,
            status,
            extra={"action": f"process_{status}", "process_id": process_id},
        )
        process = self.state.lock(connection, process_id)
        assert process is not None
        if process.parent_position is None:
            return
        parent = TaskListPosition.parse(process.parent_position)
        finished = SubProcessFinished(
            processor_node_name=self.node_name,
            parent_task_list_position=parent,
            sub_process_id=position.process_id,
            succeed=status == SUCCEEDED,
            last_message=last_message
            or LogMessage(self.node_name, position, "sub-process ended without a message"),
        )
        context.engine.dispatch(finished, self.node_name, connection=connection)

    def _validate(self, message: WorkflowMessage) -> None:
        """Payloads of a registered type are checked before they go anywhere."""
        if message.payload.type_class in self.types:
            self.types.validate(message.payload.type_class, message.payload.data)


def _connection(context: DispatchContext) -> sa.Connection:
    assert context.connection is not None  # _transaction() always provides one
    return context.connection


def _anchor(position: TaskListPosition) -> WorkflowMessage:
    """A message at ``position`` to hang a processor-side error log on."""
    return WorkflowMessage.collect_data_of(
        "dictionary", origin="processor", target=position.node_name
    ).connect_to_process_task(position)


def _log_for(exc: Exception, position: TaskListPosition, code: int) -> LogMessage:
    log = LogMessage.from_exception(exc, _anchor(position))
    return replace(log, msg_code=code)


def _code_of(exc: Exception) -> int:
    if isinstance(exc, InvalidPayloadError | WorkflowTransitionError):
        return LogCode.WRONG_MESSAGE_RECEIVED
    return LogCode.SYSTEM_ERROR


def _chunking(metadata: Mapping[str, Any]) -> tuple[int, int, int]:
    """offset (from 0), limit (> 0) and total_items (≥ 0) of a chunk process's start."""
    values = {}
    for key in ("offset", "limit", "total_items"):
        value = metadata.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidPayloadError(
                f"metadata.{key}", f"a chunk process needs an integer ≥ 0, not {value!r}"
            )
        values[key] = value
    if values["limit"] == 0:
        raise InvalidPayloadError("metadata.limit", "must be greater than 0")
    return values["offset"], values["limit"], values["total_items"]
