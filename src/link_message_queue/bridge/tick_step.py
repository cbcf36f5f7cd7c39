"""Consuming workflow messages: the tick-driven consumer step, and worker mode's handler.

Tick mode, on the linkmq+ transport: a step claims the next message (a lease that counts the
attempt), then in ONE transaction on the application database runs the handler through the
workflow engine and deletes the message, so the handler's own writes and the message's removal
commit together; a crash or an error rolls all of it back. A failure is retried with back-off;
after the last attempt, and at once for poison, the message moves to dead letters."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import sqlalchemy as sa

from ..engine import EngineError, QueueLoopError, WorkflowEngine
from ..messages import InvalidMessageError, ProcessingMessage, decode_processing_message
from ..services import CONSUMER_SENDER, ServiceError
from ..transport import ClaimedRow, MessageStore
from .dead_letters import FAILED, POISON, DeadLetters
from .errors import PoisonMessageError, RetryLaterError
from .retries import RetryPolicy
from .taskbody import workflow_body_from_row

logger = logging.getLogger(__name__)

STEP_LOCK = "consumer_step"

# Failures that no retry can mend: the message or the configuration is wrong.
_POISON_ERRORS = (
    PoisonMessageError,
    InvalidMessageError,
    ServiceError,
    QueueLoopError,
    EngineError,
)


@dataclass
class StepResult:
    """What one consumer step did: messages ``processed``, ``retried`` and ``dead_lettered``;
    ``busy`` when another step held the lock (this one did nothing); ``errors`` as short texts."""

    processed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    busy: bool = False  # another step held the lock: this tick did nothing
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """The counters as a plain dict (for logs and the CLI's JSON)."""
        return dict(self.__dict__)


class Step(Protocol):
    """One consumer step: take up to ``limit`` messages and forward them (tick mode)."""

    store: MessageStore

    def run(self, limit: int) -> StepResult:
        """Take up to ``limit`` messages and forward them; return what was done."""


@dataclass(frozen=True)
class Forwarding:
    """What both consumers share: where messages come from, where they go, and what happens
    when they fail."""

    store: MessageStore
    workflow_engine: WorkflowEngine
    dead_letters: DeadLetters
    queue: str
    policy: RetryPolicy

    def dead_letter(
        self,
        connection: sa.Connection,
        *,
        body: str,
        message: ProcessingMessage | None,
        reason: str,
        error: BaseException,
        attempts: int,
    ) -> None:
        """Record the message as a dead letter in ``connection``'s transaction, with its ``reason``,
        the ``error`` (type, text, traceback) and how many ``attempts`` were made; ``message`` is
        None when the body could not be decoded."""
        self.dead_letters.add(
            connection,
            queue=self.queue,
            body=body,
            reason=reason,
            error=error,
            attempts=attempts,
            message_name=message.name if message else None,
            message_uuid=str(message.uuid) if message else None,
        )


def _log_consumed(message: ProcessingMessage) -> None:
    logger.info(
        "consumed %s -> %s",
        message.name,
        message.target,
        extra={"action": "ack", "message_uuid": str(message.uuid)},
    )


class ConsumerStep:
    """Tick mode on the ``linkmq+`` database: each step claims up to ``limit`` messages from the
    workflow queue (leased for ``lease_s`` seconds to ``owner``) and forwards each in the handler's
    transaction."""

    def __init__(self, forwarding: Forwarding, *, lease_s: float, owner: str) -> None:
        self.forwarding = forwarding
        self.store = forwarding.store
        self.policy = forwarding.policy
        self.queue = forwarding.queue
        self.lease_s = lease_s
        self.owner = owner

    def run(self, limit: int) -> StepResult:
        """Handle up to ``limit`` messages; return at once if another step is running or the
        queue is empty. Steps never overlap: a named lock in the database guards them."""
        result = StepResult()
        if not self.store.try_lock(STEP_LOCK, self.owner, self.lease_s):
            result.busy = True
            return result
        try:
            for _ in range(limit):
                rows = self.store.claim(self.queue, self.owner, self.lease_s, 1)
                if not rows:
                    break
                self._handle(rows[0], result)
        finally:
            self.store.unlock(STEP_LOCK, self.owner)
        return result

    def _handle(self, row: ClaimedRow, result: StepResult) -> None:
        with self._kept_alive(row.id):
            self._handle_held(row, result)

    @contextmanager
    def _kept_alive(self, message_id: int) -> Iterator[None]:
        """Renew the message's lease and the step lock while a handler runs longer than the
        lease. Not on SQLite: there the step's transaction holds the database write lock, so
        no one else can claim anyway (and a renewal would wait for that very lock)."""
        if self.store.dialect == "sqlite":
            yield
            return
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.lease_s / 3):
                try:
                    self.store.renew([message_id], self.owner, self.lease_s)
                    self.store.try_lock(STEP_LOCK, self.owner, self.lease_s)
                except Exception as exc:
                    logger.error(
                        "renewing the step's lease failed: %s: %s",
                        type(exc).__name__,
                        exc,
                        extra={"action": "renew"},
                    )

        keeper = threading.Thread(target=renew, name="linkmq-step-lease", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            stop.set()
            keeper.join()

    def _handle_held(self, row: ClaimedRow, result: StepResult) -> None:
        body = row.payload
        message: ProcessingMessage | None = None
        try:
            body = workflow_body_from_row(row.payload)
            message = decode_processing_message(body)
            with self.store.engine.begin() as connection:
                self.forwarding.workflow_engine.dispatch(
                    message,
                    sender=CONSUMER_SENDER,
                    connection=connection,
                    attempt=row.delivery_count,
                )
                if not self.store.delete_leased(connection, row.id, self.owner):
                    raise RuntimeError(f"lost the lease on message {row.id}: rolled back")
        except _POISON_ERRORS as exc:
            self._dead_letter(row, body, message, POISON, exc)
            result.dead_lettered += 1
            result.errors.append(f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            result.errors.append(f"{type(exc).__name__}: {exc}")
            if self.policy.gives_up_after(row.delivery_count):
                self._dead_letter(row, body, message, FAILED, exc)
                result.dead_lettered += 1
            else:
                delay_s = self.policy.delay_s(row.delivery_count)
                self.store.release([row.id], self.owner, delay_s)
                result.retried += 1
                logger.warning(
                    "retry %s in %.1f s (attempt %d of %d): %s: %s",
                    message.name if message else row.id,
                    delay_s,
                    row.delivery_count,
                    self.policy.max_attempts,
                    type(exc).__name__,
                    exc,
                    extra={"action": "retry", "attempt": row.delivery_count},
                )
        else:
            result.processed += 1
            _log_consumed(message)

    def _dead_letter(
        self,
        row: ClaimedRow,
        body: str,
        message: ProcessingMessage | None,
        reason: str,
        error: BaseException,
    ) -> None:
        with self.store.engine.begin() as connection:
            if not self.store.delete_leased(connection, row.id, self.owner):
                return  # someone else holds it now; they decide its fate
            self.forwarding.dead_letter(
                connection,
                body=body,
                message=message,
                reason=reason,
                error=error,
                attempts=row.delivery_count,
            )


class WorkerConsumer:
    """Worker mode: a Celery worker runs ``link.workflow_message`` itself. The handler's
    transaction also records the message uuid, so a redelivered duplicate is skipped."""

    def __init__(self, forwarding: Forwarding) -> None:
        self.forwarding = forwarding
        self.store = forwarding.store
        self.policy = forwarding.policy

    def handle(self, body: str, attempts: int) -> str:
        """``processed``, ``duplicate`` or ``dead_lettered``; raises :class:`RetryLaterError`
        when the task should be retried."""
        message: ProcessingMessage | None = None
        try:
            message = decode_processing_message(body)
            with self.store.engine.begin() as connection:
                if not self.store.mark_processed(connection, str(message.uuid)):
                    logger.info(
                        "skip duplicate %s",
                        message.uuid,
                        extra={"action": "duplicate", "message_uuid": str(message.uuid)},
                    )
                    return "duplicate"
                self.forwarding.workflow_engine.dispatch(
                    message, sender=CONSUMER_SENDER, connection=connection, attempt=attempts
                )
        except _POISON_ERRORS as exc:
            self.dead_letter(body, message, POISON, exc, attempts)
            return "dead_lettered"
        except Exception as exc:
            if self.policy.gives_up_after(attempts):
                self.dead_letter(body, message, FAILED, exc, attempts)
                return "dead_lettered"
            raise RetryLaterError(self.policy.delay_s(attempts), exc) from exc
        _log_consumed(message)
        return "processed"

    def dead_letter(
        self,
        body: str,
        message: ProcessingMessage | None,
        reason: str,
        error: BaseException,
        attempts: int,
    ) -> None:
        """Record the message as a dead letter in a transaction of its own (see
        ``Forwarding.dead_letter``)."""
        with self.store.engine.begin() as connection:
            self.forwarding.dead_letter(
                connection,
                body=body,
                message=message,
                reason=reason,
                error=error,
                attempts=attempts,
            )
