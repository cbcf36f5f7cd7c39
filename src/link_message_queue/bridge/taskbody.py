"""The Celery task that carries a workflow message, and reading the message back from it.

A workflow message travels as the task ``link.workflow_message`` with one argument: the message
in the prooph service-bus JSON layout. Only JSON is accepted: a pickled or otherwise serialized
task is poison, refused before anything could deserialize it."""

from __future__ import annotations

import json
from typing import Any

from .errors import PoisonMessageError

WORKFLOW_TASK = "link.workflow_message"
TICK_TASK = "link.tick_occurred"
RELAY_TASK = "link.outbox_relay"
JSON_CONTENT_TYPE = "application/json"


def workflow_body(task: object, content_type: object, body: str | bytes) -> str:
    """The workflow message JSON inside a Celery task, as either source delivers it: ``task``
    (its ``task`` header), ``content_type`` and ``body`` (protocol 2 ``[args, kwargs, embed]``,
    text or UTF-8 bytes). Raises ``PoisonMessageError`` for anything but a JSON
    ``link.workflow_message`` task with one string argument (checked before the body is parsed)."""
    _require_json_workflow_task(task, content_type)
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PoisonMessageError(f"the task body is not UTF-8: {exc}") from None
    return _from_task_body(body)


def _require_json_workflow_task(task: object, content_type: object) -> None:
    """Refuse anything but a JSON ``link.workflow_message`` task, before reading its body."""
    if task != WORKFLOW_TASK:
        raise PoisonMessageError(f"the queued message is task {task!r}, not {WORKFLOW_TASK!r}")
    if content_type != JSON_CONTENT_TYPE:
        raise PoisonMessageError(f"content type {content_type!r} refused: only JSON is accepted")


def _from_task_body(body: str) -> str:
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
