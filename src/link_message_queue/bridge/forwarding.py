"""What tick mode's step and worker mode's handler share: forwarding one workflow message to the
workflow engine inside ONE transaction on the application database, and the one decision on a
failure: poison goes to dead letters at once; any other error is retried with back-off until the
last attempt, then dead-lettered as failed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from ..engine import EngineError, QueueLoopError, WorkflowEngine
from ..messages import InvalidMessageError, ProcessingMessage
from ..services import CONSUMER_SENDER, ServiceError
from ..transport import EnvelopeError, MessageStore
from .dead_letters import FAILED, POISON, DeadLetters
from .errors import PoisonMessageError
from .processed import mark_processed
from .retries import RetryPolicy

logger = logging.getLogger(__name__)

# Failures that no retry can mend: the message or the configuration is wrong.
POISON_ERRORS = (
    PoisonMessageError,
    EnvelopeError,
    InvalidMessageError,
    ServiceError,
    QueueLoopError,
    EngineError,
)


@dataclass(frozen=True)
class Verdict:
    """What becomes of a message whose handling failed: dead-lettered with ``reason``
    (``POISON`` or ``FAILED``), or, when ``reason`` is None, tried again in ``delay_s`` seconds."""

    reason: str | None
    delay_s: float = 0.0


@dataclass(frozen=True)
class Forwarding:
    """Where workflow messages go and what happens when they fail: the ``workflow_engine``
    dispatches them in transactions on ``store``'s database, failures follow ``policy``, dead
    letters of ``queue`` go to ``dead_letters``."""

    store: MessageStore
    workflow_engine: WorkflowEngine
    dead_letters: DeadLetters
    queue: str
    policy: RetryPolicy

    def forward(
        self,
        message: ProcessingMessage,
        attempt: int,
        *,
        deduplicate: bool = False,
        complete: Callable[[sa.Connection], None] | None = None,
    ) -> bool:
        """Dispatch ``message`` (its ``attempt``, 1 the first time) through the workflow engine in
        one transaction, then ``complete(connection)`` in it (tick mode deletes the message
        there): the handler's writes, its follow-up messages and the completion commit together.
        With ``deduplicate`` the message uuid is recorded in that transaction first, and a uuid
        already recorded returns False without dispatching (a broker may deliver a message
        twice). True when dispatched. Errors of the handler or the engine propagate, after the
        transaction rolled back."""
        with self.store.engine.begin() as connection:
            processed = self.store.tables.processed
            if deduplicate and not mark_processed(connection, processed, str(message.uuid)):
                logger.info(
                    "skip duplicate %s",
                    message.uuid,
                    extra={"action": "duplicate", "message_uuid": str(message.uuid)},
                )
                return False
            self.workflow_engine.dispatch(
                message, sender=CONSUMER_SENDER, connection=connection, attempt=attempt
            )
            if complete is not None:
                complete(connection)
        logger.info(
            "consumed %s -> %s",
            message.name,
            message.target,
            extra={"action": "ack", "message_uuid": str(message.uuid)},
        )
        return True

    def verdict(self, error: BaseException, attempts: int) -> Verdict:
        """The one decision on a failed message after ``attempts`` attempts: poison
        (``POISON_ERRORS``) is dead-lettered at once; another error is retried after the
        policy's back-off, or dead-lettered as failed once the policy gives up."""
        if isinstance(error, POISON_ERRORS):
            return Verdict(POISON)
        if self.policy.gives_up_after(attempts):
            return Verdict(FAILED)
        return Verdict(None, self.policy.delay_s(attempts))

    def dead_letter(
        self,
        *,
        body: str,
        message: ProcessingMessage | None,
        reason: str,
        error: BaseException,
        attempts: int,
        complete: Callable[[sa.Connection], None] | None = None,
    ) -> None:
        """Record the message as a dead letter in a transaction of its own, with its ``reason``,
        the ``error`` (type, text, traceback) and how many ``attempts`` were made; ``message`` is
        None when the body could not be decoded. ``complete(connection)`` runs first in that
        transaction (tick mode deletes the message there: both commit, or neither); what it
        raises propagates and nothing is recorded."""
        with self.store.engine.begin() as connection:
            if complete is not None:
                complete(connection)
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
