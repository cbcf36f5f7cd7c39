"""Celery's worker consumer with one change: a message it cannot decode — a pickled task, which
JSON-only workers refuse, or a broken body — goes to dead letters with its reason before it is
acknowledged, instead of only being logged (Celery's default) and lost.

Configured as ``worker_consumer`` by ``celery_config``."""

from __future__ import annotations

import base64
import logging
from typing import Any

from celery.worker.consumer import Consumer

from .bridge.dead_letters import POISON
from .bridge.errors import PoisonMessageError
from .celery_app import runtime

logger = logging.getLogger(__name__)


class DeadLetteringConsumer(Consumer):  # type: ignore[misc]  # Celery is untyped
    """Celery's worker ``Consumer`` that dead-letters a message it cannot decode or refuses
    (non-JSON content, an invalid task) instead of only logging and dropping it; if the database
    refuses the dead letter, the message is requeued."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        """A body that does not decode."""
        if self._kept(message, exc):
            super().on_decode_error(message, exc)  # logs it, and acknowledges it

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        """Content this worker refuses (pickle and every other non-JSON serializer), or an
        invalid task message."""
        if self._kept(message, exc):
            super().on_invalid_task(body, message, exc)  # logs it, and rejects it

    def _kept(self, message: Any, exc: Exception) -> bool:
        try:
            self._dead_letter(message, exc)
        except Exception:
            # The database refused: give the message back rather than lose it.
            logger.exception(
                "could not dead-letter a refused message; it goes back to the queue",
                extra={"action": "dead_letter"},
            )
            message.reject(requeue=True)
            return False
        return True

    @staticmethod
    def _dead_letter(message: Any, exc: Exception) -> None:
        current = runtime()  # the worker's own runtime, built on first use
        headers = message.headers or {}
        body = message.body
        if isinstance(body, bytes):
            try:
                body = body.decode("utf-8")
            except UnicodeDecodeError:
                body = "base64:" + base64.b64encode(body).decode("ascii")
        delivery = message.delivery_info or {}
        refused = PoisonMessageError(
            f"the worker refused content type {message.content_type!r} of task "
            f"{headers.get('task')!r} ({type(exc).__name__}: {exc}): only JSON is accepted"
        )
        with current.store.engine.begin() as connection:
            current.dead_letters.add(
                connection,
                queue=str(delivery.get("routing_key") or current.settings.queue),
                body=str(body),
                reason=POISON,
                error=refused,
                attempts=1,
                message_name=headers.get("task"),
                message_uuid=headers.get("id"),
            )
