"""Tick mode when the workflow queue lives in RabbitMQ or Redis (``LINK_MQ_BROKER_URL``): each
tick's consumer step takes up to ``messages_per_tick`` messages from the broker with
``basic_get``, runs each as worker mode does (the handler's transaction records the message
uuid, so a redelivered duplicate is skipped) and acknowledges it only after that transaction
committed. A failure is retried through the outbox, with back-off; a step that dies leaves its
unacknowledged message to the broker, which delivers it again."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from ..transport import MessageStore
from .dead_letters import POISON
from .errors import PoisonMessageError, RetryLaterError
from .outbox import Outbox
from .taskbody import require_json_workflow_task, workflow_body_from_task_body
from .tick_step import STEP_LOCK, StepResult, WorkerConsumer

logger = logging.getLogger(__name__)


class BrokerStep:
    """Tick mode's consumer step when the workflow queue lives in RabbitMQ or Redis: messages come
    from Celery ``app``'s broker by ``basic_get`` and are acked after the handler's transaction
    commits; failures are retried through ``outbox``. Steps never overlap: a database lock held by
    ``owner`` for ``lease_s`` seconds guards them."""

    def __init__(
        self,
        worker: WorkerConsumer,
        app: Celery,
        outbox: Outbox,
        *,
        queue: str,
        owner: str,
        lease_s: float,
    ) -> None:
        self.worker = worker
        self.store: MessageStore = worker.store
        self.app = app
        self.outbox = outbox
        self.queue = queue
        self.owner = owner
        self.lease_s = lease_s

    def run(self, limit: int) -> StepResult:
        """Handle up to ``limit`` messages; at once if another step runs or nothing waits."""
        result = StepResult()
        if not self.store.try_lock(STEP_LOCK, self.owner, self.lease_s):
            result.busy = True
            return result
        try:
            with (
                self.app.connection_for_read() as connection,
                connection.SimpleQueue(self.queue, no_ack=False) as queue,
            ):
                for _ in range(limit):
                    try:
                        message = queue.get(block=False)
                    except queue.Empty:
                        break
                    self._handle(message, result)
        finally:
            self.store.unlock(STEP_LOCK, self.owner)
        return result

    def _handle(self, message: Any, result: StepResult) -> None:
        headers = message.headers or {}
        attempts = int(headers.get("retries") or 0) + 1
        body_bytes = message.body
        raw = (
            body_bytes.decode("utf-8", "replace")
            if isinstance(body_bytes, bytes)
            else str(body_bytes)
        )
        try:
            require_json_workflow_task(headers.get("task"), message.content_type)
            body = workflow_body_from_task_body(raw)
        except PoisonMessageError as exc:
            self.worker.dead_letter(raw, None, POISON, exc, attempts)
            message.ack()
            result.dead_lettered += 1
            result.errors.append(f"{type(exc).__name__}: {exc}")
            return
        try:
            outcome = self.worker.handle(body, attempts)
        except RetryLaterError as retry:
            # Back on the queue through the outbox: committed before the ack, so a crash
            # between the two repeats the message (and its uuid skips the duplicate).
            self.outbox.add(self.queue, body, countdown_s=retry.delay_s, retries=attempts)
            message.ack()
            result.retried += 1
            result.errors.append(str(retry))
            return
        message.ack()
        if outcome == "dead_lettered":
            result.dead_lettered += 1
        else:
            result.processed += 1
