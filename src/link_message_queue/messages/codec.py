"""The one JSON codec between messages and the prooph service-bus layout.

Reads what PHP wrote (``[]`` for empty objects, ``+0200`` offsets, second precision, bernard's
``{"message": …, "timestamp": …}`` envelope); writes compact JSON with UTC microsecond times.
Everything that does not decode raises :class:`InvalidMessageError` naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeAlias

from .errors import InvalidMessageError
from .fields import (
    JsonObject,
    as_object,
    required,
    required_bool,
    required_int,
    required_str,
)
from .ids import TaskListPosition
from .log import LogMessage
from .metadata import validate_metadata
from .names import (
    LOG_MESSAGE_NAME,
    START_SUB_PROCESS_NAME,
    SUB_PROCESS_FINISHED_NAME,
    TICK_OCCURRED_NAME,
    is_workflow_message_name,
)
from .remote import MessageHeader, MessageType, RemoteMessage, parse_uuid
from .subprocess import StartSubProcess, SubProcessFinished
from .tick import TickOccurred
from .workflow import Payload, WorkflowMessage

ProcessingMessage: TypeAlias = WorkflowMessage | LogMessage | StartSubProcess | SubProcessFinished
AnyMessage: TypeAlias = ProcessingMessage | TickOccurred


# -- messages ⇄ RemoteMessage ---------------------------------------------------------------


def to_remote(message: AnyMessage) -> RemoteMessage:
    """Encode a message (workflow, log, sub-process or tick) as prooph's ``RemoteMessage`` envelope,
    in the PHP original's payload layout."""
    if isinstance(message, WorkflowMessage):
        return _workflow_to_remote(message)
    if isinstance(message, LogMessage):
        payload: JsonObject = {
            "origin": message.origin,
            "processTaskListPosition": str(message.process_task_list_position),
            "technicalMsg": message.technical_msg,
            "msgParams": message.msg_params,
            "msgCode": int(message.msg_code),
        }
        return _remote(LOG_MESSAGE_NAME, message, 1, MessageType.EVENT, payload)
    if isinstance(message, StartSubProcess):
        previous = message.previous_message
        payload = {
            "parent_task_list_position": str(message.parent_task_list_position),
            "sync_log_messages": message.sync_log_messages,
            "sub_process_definition": message.sub_process_definition,
            "previous_message": None if previous is None else to_remote(previous).to_dict(),
            "origin": message.origin,
            "target": message.target,
        }
        return _remote(
            START_SUB_PROCESS_NAME, message, message.version, MessageType.COMMAND, payload
        )
    if isinstance(message, SubProcessFinished):
        payload = {
            "processor_node_name": message.processor_node_name,
            "parent_task_list_position": str(message.parent_task_list_position),
            "sub_process_id": str(message.sub_process_id),
            "succeed": message.succeed,
            "last_message": to_remote(message.last_message).to_dict(),
        }
        return _remote(
            SUB_PROCESS_FINISHED_NAME, message, message.version, MessageType.EVENT, payload
        )
    if isinstance(message, TickOccurred):
        return _remote(TICK_OCCURRED_NAME, message, message.version, MessageType.EVENT, {})
    raise TypeError(f"{type(message).__name__} is not a message of this codec")


def from_remote(remote: RemoteMessage) -> AnyMessage:
    """Decode a ``RemoteMessage`` into the message its ``name`` says. Raises ``InvalidMessageError``
    naming the bad field (``name`` for an unknown message, ``payload.<key>`` for a bad payload)."""
    name = remote.name
    try:
        if is_workflow_message_name(name):
            return _workflow_from_remote(remote)
        if name == LOG_MESSAGE_NAME:
            return _log_from_remote(remote)
        if name == START_SUB_PROCESS_NAME:
            return _start_sub_process_from_remote(remote)
        if name == SUB_PROCESS_FINISHED_NAME:
            return _sub_process_finished_from_remote(remote)
        if name == TICK_OCCURRED_NAME:
            header = remote.header
            return TickOccurred(
                uuid=header.uuid, created_at=header.created_at, version=header.version
            )
    except InvalidMessageError as exc:
        if exc.field.startswith(("header", "payload")):
            raise
        raise exc.within("payload") from None
    raise InvalidMessageError("name", f"{name!r} is not a message this system knows")


# -- messages ⇄ JSON text ---------------------------------------------------------------------


def encode(message: AnyMessage) -> str:
    """Compact JSON of the message in the service-bus layout."""
    return json.dumps(
        to_remote(message).to_dict(), separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def decode(raw: str | bytes | Mapping[str, Any]) -> AnyMessage:
    """A message from JSON text, bytes or an already parsed object; bernard's envelope
    ``{"message": …, "timestamp": …}`` is unwrapped."""
    data = parse_json(raw, "body") if isinstance(raw, str | bytes) else raw
    if isinstance(data, Mapping) and "message" in data and "name" not in data:
        data = data["message"]
    return from_remote(RemoteMessage.from_dict(data))


def decode_processing_message(raw: str | bytes | Mapping[str, Any]) -> ProcessingMessage:
    """Like :func:`decode`, for a message the workflow engine can route (not a tick)."""
    message = decode(raw)
    if isinstance(message, TickOccurred):
        raise InvalidMessageError("name", "TickOccurred is not a processing message")
    return message


def parse_json(raw: str | bytes, field: str) -> Any:
    """Parse ``raw`` (UTF-8 bytes or text) as strict JSON (no NaN or Infinity). Raises
    ``InvalidMessageError`` on ``field`` when it is not UTF-8, not JSON, or nested too deeply."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise InvalidMessageError(field, f"is not UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise InvalidMessageError(field, f"is not JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise InvalidMessageError(field, "is nested too deeply") from None


def _reject_constant(constant: str) -> Any:
    raise InvalidMessageError("body", f"{constant} is not a JSON number")


# -- per message kind -------------------------------------------------------------------------


def _remote(
    name: str,
    message: LogMessage | StartSubProcess | SubProcessFinished | TickOccurred,
    version: int,
    message_type: MessageType,
    payload: JsonObject,
) -> RemoteMessage:
    header = MessageHeader(message.uuid, message.created_at, version, message_type)
    return RemoteMessage(name, header, payload)


def _workflow_to_remote(message: WorkflowMessage) -> RemoteMessage:
    payload: JsonObject = {
        "json": json.dumps(message.payload.to_dict(), separators=(",", ":"), ensure_ascii=False),
        "metadata": message.metadata,
        "origin": message.origin,
        "target": message.target,
    }
    if message.process_task_list_position is not None:
        payload["processTaskListPosition"] = str(message.process_task_list_position)
    header = MessageHeader(message.uuid, message.created_at, message.version, message.message_type)
    return RemoteMessage(message.name, header, payload)


def _workflow_from_remote(remote: RemoteMessage) -> WorkflowMessage:
    data = remote.payload
    embedded = as_object(parse_json(_json_field(data), "payload.json"), "payload.json")
    type_class = required_str(embedded, "typeClass", "payload.json")
    position = data.get("processTaskListPosition")
    return WorkflowMessage(
        name=remote.name,
        origin=required_str(data, "origin", "payload"),
        target=required_str(data, "target", "payload"),
        payload=Payload(type_class, embedded.get("data")),
        uuid=remote.header.uuid,
        version=_at_least_one(remote.header.version),
        created_at=remote.header.created_at,
        metadata=validate_metadata(data.get("metadata", {}), "payload.metadata"),
        process_task_list_position=None
        if position is None
        else TaskListPosition.parse(position, "payload.processTaskListPosition"),
    )


def _json_field(data: JsonObject) -> str:
    value = required(data, "json", "payload")
    if not isinstance(value, str):
        raise InvalidMessageError("payload.json", "must be a JSON string")
    return value


def _at_least_one(version: int) -> int:
    if version < 1:
        raise InvalidMessageError("header.version", "a workflow message version starts at 1")
    return version


def _log_from_remote(remote: RemoteMessage) -> LogMessage:
    data = remote.payload
    return LogMessage(
        origin=required_str(data, "origin", "payload"),
        process_task_list_position=TaskListPosition.parse(
            required(data, "processTaskListPosition", "payload"), "payload.processTaskListPosition"
        ),
        technical_msg=_string(required(data, "technicalMsg", "payload"), "payload.technicalMsg"),
        msg_code=required_int(data, "msgCode", "payload"),
        msg_params=validate_metadata(data.get("msgParams", {}), "payload.msgParams"),
        uuid=remote.header.uuid,
        created_at=remote.header.created_at,
    )


def _start_sub_process_from_remote(remote: RemoteMessage) -> StartSubProcess:
    data = remote.payload
    previous = data.get("previous_message")
    return StartSubProcess(
        parent_task_list_position=TaskListPosition.parse(
            required(data, "parent_task_list_position", "payload"),
            "payload.parent_task_list_position",
        ),
        sub_process_definition=as_object(
            required(data, "sub_process_definition", "payload"), "payload.sub_process_definition"
        ),
        target=required_str(data, "target", "payload"),
        sync_log_messages=required_bool(data, "sync_log_messages", "payload"),
        previous_message=None
        if previous is None
        else _nested(previous, "payload.previous_message"),
        uuid=remote.header.uuid,
        version=remote.header.version,
        created_at=remote.header.created_at,
    )


def _sub_process_finished_from_remote(remote: RemoteMessage) -> SubProcessFinished:
    data = remote.payload
    return SubProcessFinished(
        processor_node_name=required_str(data, "processor_node_name", "payload"),
        parent_task_list_position=TaskListPosition.parse(
            required(data, "parent_task_list_position", "payload"),
            "payload.parent_task_list_position",
        ),
        sub_process_id=parse_uuid(
            required(data, "sub_process_id", "payload"), "payload.sub_process_id"
        ),
        succeed=required_bool(data, "succeed", "payload"),
        last_message=_nested(required(data, "last_message", "payload"), "payload.last_message"),
        uuid=remote.header.uuid,
        version=remote.header.version,
        created_at=remote.header.created_at,
    )


def _nested(value: object, field: str) -> ProcessingMessage:
    try:
        message = from_remote(RemoteMessage.from_dict(value))
    except InvalidMessageError as exc:
        raise exc.within(field) from None
    if isinstance(message, TickOccurred):
        raise InvalidMessageError(field, "must be a processing message")
    return message


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidMessageError(field, "must be a string")
    return value
