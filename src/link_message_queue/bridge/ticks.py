"""TickOccurred: Celery beat's heartbeat. Each tick is published to the registered listeners;
the built-in one runs a consumer step."""

from __future__ import annotations

import logging
from typing import Protocol

from ..messages import TickOccurred
from .consumer import ConsumerStep, StepResult

logger = logging.getLogger(__name__)


class TickListener(Protocol):
    def on_tick(self, tick: TickOccurred) -> None: ...


class TickBus:
    """Publishes a tick to every listener; one failing listener does not stop the others, and
    the first error is raised once all have run."""

    def __init__(self) -> None:
        self.listeners: list[TickListener] = []

    def subscribe(self, listener: TickListener) -> None:
        self.listeners.append(listener)

    def publish(self, tick: TickOccurred) -> None:
        errors: list[BaseException] = []
        for listener in self.listeners:
            try:
                listener.on_tick(tick)
            except Exception as exc:
                logger.exception("tick listener %r failed", listener, extra={"action": "tick"})
                errors.append(exc)
        if errors:
            raise errors[0]


class ConsumerTickListener:
    """Runs one consumer step of up to ``messages_per_tick`` messages per tick."""

    def __init__(self, step: ConsumerStep, messages_per_tick: int) -> None:
        self.step = step
        self.messages_per_tick = messages_per_tick
        self.last_result = StepResult()

    def on_tick(self, tick: TickOccurred) -> None:
        self.last_result = self.step.run(self.messages_per_tick)
        result = self.last_result
        logger.info(
            "tick %s: %d processed, %d retried, %d dead-lettered%s",
            tick.uuid,
            result.processed,
            result.retried,
            result.dead_lettered,
            " (a step was running)" if result.busy else "",
            extra={"action": "tick", "tick_uuid": str(tick.uuid), **result.as_dict()},
        )
