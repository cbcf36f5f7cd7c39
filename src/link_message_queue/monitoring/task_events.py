"""Task events in groups: a worker bootstep that makes Celery send its task events (received,
started, succeeded, …) as one ``task.multi`` message per group instead of one message each.

Celery does this itself only in its asynchronous event loop (a transport with a kombu hub: Redis,
RabbitMQ, and linkmq itself, whose worker runs that loop; the step then stays idle); without
one (green pools) each event is built, serialized and published on its own, in the worker's
main process, three times per task. The
grouped message is Celery's own format: Flower, ``celery events`` and every ``EventReceiver``
read it. Worker events (heartbeats, online/offline) are never held back.

A group is sent when it reaches ``buffer_limit`` events or ``interval_s`` after its first event,
whichever comes first, by a thread of the worker; a worker that stops sends what it holds.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import bootsteps

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 0.05
DEFAULT_BUFFER_LIMIT = 100


class GroupedTaskEvents(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery is untyped
    """Consumer bootstep: ``app.steps["consumer"].add(GroupedTaskEvents)``. Settings:
    ``linkmq_task_events_interval_s`` (0.05) and ``linkmq_task_events_buffer_limit`` (100)."""

    requires = ("celery.worker.consumer.events:Events",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        conf = c.app.conf
        self.interval_s = float(conf.get("linkmq_task_events_interval_s", DEFAULT_INTERVAL_S))
        self.buffer_limit = int(conf.get("linkmq_task_events_buffer_limit", DEFAULT_BUFFER_LIMIT))
        self.flusher: _Flusher | None = None

    def start(self, c: Any) -> None:
        """Celery bootstep ``start``: buffer task events and send them in groups from a flusher
        thread, unless events are off or Celery's event loop (``c.hub``) groups them already."""
        self._stop_flusher()
        dispatcher = c.event_dispatcher
        if dispatcher is None or not dispatcher.enabled or c.hub is not None:
            return  # no events, or Celery's event loop groups them already
        self.flusher = _Flusher(dispatcher, self.interval_s)
        dispatcher.buffer_limit = self.buffer_limit
        dispatcher.buffer_group = frozenset({"task"})
        dispatcher.on_send_buffered = self.flusher.wake
        self.flusher.start()

    def stop(self, c: Any) -> None:
        """Celery bootstep ``stop``: stop the flusher thread."""
        self._stop_flusher()

    def shutdown(self, c: Any) -> None:
        """Celery bootstep ``shutdown``: as ``stop``."""
        self._stop_flusher()

    def _stop_flusher(self) -> None:
        if self.flusher is not None:
            self.flusher.stop()
            self.flusher = None


class _Flusher:
    """A thread that sends the dispatcher's grouped events ``interval_s`` after the first one
    of a group arrived."""

    def __init__(self, dispatcher: Any, interval_s: float) -> None:
        self._dispatcher = dispatcher
        self._interval_s = interval_s
        self._pending = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="linkmq-task-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._pending.set()

    def stop(self) -> None:
        self._stopping.set()
        self._pending.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._send()  # what arrived since the last group

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._pending.wait()
            if self._stopping.is_set():
                return
            # Gather the events of one interval into the group.
            self._stopping.wait(self._interval_s)
            self._pending.clear()
            if not self._send():
                self._pending.set()  # try again one interval later

    def _send(self) -> bool:
        try:
            # errors=True: events Celery held back while the broker was unreachable go too.
            self._dispatcher.flush(errors=True, groups=True)
        except Exception as exc:
            # Celery keeps the events (in the group or its offline buffer) for the next try.
            logger.error(
                "sending grouped task events failed (%s: %s); kept for the next try",
                type(exc).__name__,
                exc,
                extra={"action": "task-events"},
            )
            return False
        return True
