"""TickOccurred: Celery beat's heartbeat. Each tick is published to the registered listeners;
the built-in one runs a consumer step."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from ..messages import TickOccurred
from .consumer import Step, StepResult

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

    def __init__(self, step: Step, messages_per_tick: int) -> None:
        self.step = step
        self.messages_per_tick = messages_per_tick
        self.last_result = StepResult()

    def on_tick(self, tick: TickOccurred) -> None:
        started = time.time()
        self.last_result = self.step.run(self.messages_per_tick)
        result = self.last_result
        if not result.busy:
            # For the metrics: how late the tick ran and how long its step took.
            self.step.store.set_gauges(
                {
                    "tick_lag_seconds": max(0.0, started - tick.created_at.timestamp()),
                    "consumer_step_duration_seconds": time.time() - started,
                    "last_tick_timestamp_seconds": started,
                    "last_step_processed": result.processed,
                }
            )
        logger.info(
            "tick %s: %d processed, %d retried, %d dead-lettered%s",
            tick.uuid,
            result.processed,
            result.retried,
            result.dead_lettered,
            " (a step was running)" if result.busy else "",
            extra={"action": "tick", "tick_uuid": str(tick.uuid), **result.as_dict()},
        )
