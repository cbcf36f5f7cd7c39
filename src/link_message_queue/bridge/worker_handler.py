"""Worker mode: a Celery worker runs the task ``link.workflow_message`` itself, and this handler
forwards its workflow message (``celery_app.workflow_message``)."""

from __future__ import annotations

from ..messages import ProcessingMessage, decode_processing_message
from .errors import RetryLaterError
from .forwarding import Forwarding


class WorkerHandler:
    """Worker mode's handler of one workflow message: the handler's transaction also records the
    message uuid, so a redelivered duplicate is skipped; failures follow ``Forwarding.verdict``
    (a retry is Celery's own, with the back-off as countdown)."""

    def __init__(self, forwarding: Forwarding) -> None:
        self.forwarding = forwarding

    def handle(self, body: str, attempts: int) -> str:
        """Forward the workflow message JSON ``body`` on its attempt ``attempts`` (1 the first
        time): ``processed``, ``duplicate`` or ``dead_lettered``. Raises
        :class:`RetryLaterError` (with the back-off in seconds) when the task should be retried;
        database errors while dead-lettering propagate."""
        message: ProcessingMessage | None = None
        try:
            message = decode_processing_message(body)
            if not self.forwarding.forward(message, attempts, deduplicate=True):
                return "duplicate"
        except Exception as exc:
            verdict = self.forwarding.verdict(exc, attempts)
            if verdict.reason is None:
                raise RetryLaterError(verdict.delay_s, exc) from exc
            self.forwarding.dead_letter(
                body=body, message=message, reason=verdict.reason, error=exc, attempts=attempts
            )
            return "dead_lettered"
        return "processed"
