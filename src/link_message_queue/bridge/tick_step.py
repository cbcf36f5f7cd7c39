"""Tick mode's step: on each tick, up to ``messages_per_tick`` workflow messages are taken from a
message source and forwarded, each in ONE transaction on the application database that carries
the handler's writes and the message's completion, so a crash or an error rolls all of it back.
A failure is retried with back-off; after the last attempt, and at once for poison, the message
moves to dead letters (``Forwarding.verdict``).

Two sources (``sources``): the ``linkmq+`` workflow queue through the transport's direct
delivery API, and RabbitMQ/Redis by ``basic_get``. Steps never overlap: a named lock in the
database, kept by the lease keeper while the step runs, guards them."""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Protocol

import sqlalchemy as sa

from ..messages import ProcessingMessage, decode_processing_message
from ..transport import LeaseKeeper, LeaseLostError, MessageStore
from .forwarding import Forwarding

logger = logging.getLogger(__name__)

# The lock's name in the database (its rows outlive this code: unchanged).
STEP_LOCK = "consumer_step"


@dataclass
class StepResult:
    """What one tick step did: messages ``processed``, ``retried`` and ``dead_lettered``;
    ``busy`` when another step held the lock (this one did nothing); ``errors`` as short texts."""

    processed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    busy: bool = False  # another step held the lock: this tick did nothing
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """The counters as a plain dict (for logs and the CLI's JSON)."""
        return dict(self.__dict__)


class Received(Protocol):
    """One message a source handed to the step, held until the step settles it."""

    attempt: int  # this delivery's attempt: 1 the first time
    text: str  # what is dead-lettered when its workflow body cannot be read
    deduplicate: bool  # record its uuid in the handler's transaction (the source may repeat it)

    def workflow_body(self) -> str:
        """The workflow message JSON it carries; raises ``PoisonMessageError`` or
        ``EnvelopeError`` when it carries none."""

    def complete(self, connection: sa.Connection) -> None:
        """Settle it inside ``connection``'s transaction, the one that carries its outcome;
        raises ``LeaseLostError`` when it is no longer this step's."""

    def retry(self, workflow_body: str, delay_s: float) -> None:
        """Hand it back, to be delivered again in ``delay_s`` seconds, committed at once."""

    def acknowledge(self) -> None:
        """Its outcome committed: let the source forget it."""


class MessageSource(Protocol):
    """Where a tick step's messages come from."""

    def receive(self, limit: int) -> Generator[Received, None, None]:
        """Up to ``limit`` messages, each taken when the previous one was settled; closing the
        generator gives back what the source opened for the step."""


class TickStep:
    """Tick mode's step over ``source``: messages are forwarded by ``forwarding``; ``keeper``
    (``keeper.owner``, ``keeper.lease_s`` seconds) holds the step lock while the step runs."""

    def __init__(self, forwarding: Forwarding, source: MessageSource, keeper: LeaseKeeper) -> None:
        self.forwarding = forwarding
        self.source = source
        self.keeper = keeper
        self.store: MessageStore = forwarding.store

    def run(self, limit: int) -> StepResult:
        """Handle up to ``limit`` messages; return at once if another step is running or nothing
        waits. Errors of a message's handler are counted in the result, never raised; database
        or broker errors outside a handler propagate."""
        result = StepResult()
        with self.keeper.locked(STEP_LOCK) as locked:
            if not locked:
                result.busy = True
                return result
            received = self.source.receive(limit)
            try:
                for message in received:
                    self._handle(message, result)
            finally:
                received.close()
        return result

    def _handle(self, received: Received, result: StepResult) -> None:
        body = received.text
        message: ProcessingMessage | None = None
        try:
            body = received.workflow_body()
            message = decode_processing_message(body)
            self.forwarding.forward(
                message,
                received.attempt,
                deduplicate=received.deduplicate,
                complete=received.complete,
            )
        except Exception as exc:
            result.errors.append(f"{type(exc).__name__}: {exc}")
            verdict = self.forwarding.verdict(exc, received.attempt)
            if verdict.reason is not None:
                self._dead_letter(received, body, message, verdict.reason, exc)
                result.dead_lettered += 1
                return
            received.retry(body, verdict.delay_s)
            result.retried += 1
            logger.warning(
                "retry %s in %.1f s (attempt %d of %d): %s: %s",
                message.name if message else "an undecoded message",
                verdict.delay_s,
                received.attempt,
                self.forwarding.policy.max_attempts,
                type(exc).__name__,
                exc,
                extra={"action": "retry", "attempt": received.attempt},
            )
            return
        received.acknowledge()
        result.processed += 1  # a duplicate too: it was processed before

    def _dead_letter(
        self,
        received: Received,
        body: str,
        message: ProcessingMessage | None,
        reason: str,
        error: BaseException,
    ) -> None:
        """The dead letter and the message's completion in one transaction; nothing when the
        message is no longer this step's (its new holder decides its fate)."""
        try:
            self.forwarding.dead_letter(
                body=body,
                message=message,
                reason=reason,
                error=error,
                attempts=received.attempt,
                complete=received.complete,
            )
        except LeaseLostError:
            return
        received.acknowledge()
