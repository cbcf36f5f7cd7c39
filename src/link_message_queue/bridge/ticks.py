"""TickOccurred: Celery beat's heartbeat. Each tick is published to the registered listeners;
the built-in one runs a tick step."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from ..messages import TickOccurred
from .tick_step import StepResult, TickStep

logger = logging.getLogger(__name__)

# Message header with the sender's time.time() when it published the tick task (celery beat):
# the tick occurred then, however long it waited in the queue behind a busy worker.
TICK_EMITTED_AT_HEADER = "linkmq_emitted_at"


def stamp_emission(headers: dict[str, Any]) -> None:
    """Stamp a tick task's message headers with the emission time (unless already stamped)."""
    headers.setdefault(TICK_EMITTED_AT_HEADER, time.time())


def tick_emitted(emitted_at: object) -> TickOccurred:
    """The tick a tick task's message stands for: occurred at its ``TICK_EMITTED_AT_HEADER``
    value (Unix seconds on the sender's clock), or now for a message without one (sent by a
    client that does not stamp it)."""
    if isinstance(emitted_at, int | float) and not isinstance(emitted_at, bool):
        return TickOccurred(created_at=datetime.fromtimestamp(emitted_at, UTC))
    if emitted_at is not None:
        logger.warning(
            "tick task header %s=%r is not a Unix time; the tick counts as emitted now",
            TICK_EMITTED_AT_HEADER,
            emitted_at,
            extra={"action": "tick"},
        )
    return TickOccurred()


class TickListener(Protocol):
    """Something run on each ``TickOccurred`` (prooph LINK's heartbeat)."""

    def on_tick(self, tick: TickOccurred) -> None:
        """React to ``tick``; an exception is logged and re-raised by the bus."""


class TickBus:
    """Publishes a tick to every listener; one failing listener does not stop the others, and
    the first error is raised once all have run."""

    def __init__(self) -> None:
        self.listeners: list[TickListener] = []

    def subscribe(self, listener: TickListener) -> None:
        """Add ``listener``; listeners run in subscription order."""
        self.listeners.append(listener)

    def publish(self, tick: TickOccurred) -> None:
        """Run every listener on ``tick``. A failing listener is logged and the others still run;
        the first exception is then raised."""
        errors: list[BaseException] = []
        for listener in self.listeners:
            try:
                listener.on_tick(tick)
            except Exception as exc:
                logger.exception("tick listener %r failed", listener, extra={"action": "tick"})
                errors.append(exc)
        if errors:
            raise errors[0]


# Records gauges (name -> value) for the metrics: ``Gauges.set`` in the runtime.
RecordGauges = Callable[[dict[str, float]], None]


class StepTickListener:
    """Runs one tick step of up to ``messages_per_tick`` messages per tick and hands the tick's
    gauges to ``record_gauges``."""

    def __init__(self, step: TickStep, messages_per_tick: int, record_gauges: RecordGauges) -> None:
        self.step = step
        self.messages_per_tick = messages_per_tick
        self.record_gauges = record_gauges
        self.last_result = StepResult()

    def on_tick(self, tick: TickOccurred) -> None:
        """Run one tick step of up to ``messages_per_tick`` messages, record the tick lag and
        step duration (seconds) as gauges, and log the step's counts."""
        started = time.time()
        self.last_result = self.step.run(self.messages_per_tick)
        result = self.last_result
        if not result.busy:
            # For the metrics: how late the tick ran (its emission on the sender's clock to its
            # start on ours; negative when the clocks disagree) and how long its step took.
            self.record_gauges(
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
