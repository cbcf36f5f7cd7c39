"""The Celery task that carries a workflow message, and reading it back from a queued row.

A workflow message travels as the task ``link.workflow_message`` with one argument: the message
in the prooph service-bus JSON layout. Only JSON is accepted: a pickled or otherwise serialized
task is poison, refused before anything could deserialize it."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .errors import PoisonMessageError

WORKFLOW_TASK = "link.workflow_message"
TICK_TASK = "link.tick_occurred"
RELAY_TASK = "link.outbox_relay"
JSON_CONTENT_TYPE = "application/json"


def workflow_body_from_row(payload: str) -> str:
    """The workflow message JSON inside a queued kombu message (the ``payload`` column)."""
    message = _json(payload, "the queued message is not JSON")
    if not isinstance(message, dict):
        raise PoisonMessageError("the queued message is not a kombu message object")
    headers = message.get("headers") or {}
    require_json_workflow_task(
        headers.get("task") if isinstance(headers, dict) else None, message.get("content-type")
    )
    body = message.get("body")
    properties = message.get("properties") or {}
    if isinstance(properties, dict) and properties.get("body_encoding") == "base64":
        try:
            body = base64.b64decode(str(body), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise PoisonMessageError(f"the task body is not base64 UTF-8: {exc}") from None
    if not isinstance(body, str):
        raise PoisonMessageError("the task body is not text")
    return workflow_body_from_task_body(body)


def require_json_workflow_task(task: object, content_type: object) -> None:
    """Refuse anything but a JSON ``link.workflow_message`` task, before reading its body."""
    if task != WORKFLOW_TASK:
        raise PoisonMessageError(f"the queued message is task {task!r}, not {WORKFLOW_TASK!r}")
    if content_type != JSON_CONTENT_TYPE:
        raise PoisonMessageError(f"content type {content_type!r} refused: only JSON is accepted")


def workflow_body_from_task_body(body: str) -> str:
    """The workflow message JSON from a Celery protocol 2 body ``[args, kwargs, embed]``."""
    decoded = _json(body, "the task body is not JSON")
    if not (isinstance(decoded, list) and decoded and isinstance(decoded[0], list)):
        raise PoisonMessageError("the task body is not Celery's [args, kwargs, embed]")
    args = decoded[0]
    if len(args) != 1 or not isinstance(args[0], str):
        raise PoisonMessageError(f"{WORKFLOW_TASK} takes one JSON string argument")
    return args[0]


def _json(text: str, problem: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PoisonMessageError(f"{problem}: {exc}") from None
