"""A Celery app for crash tests: each task appends ``start``/``done`` lines to a file, so the
test can tell what ran, what finished and what ran twice. Configured from the environment."""

from __future__ import annotations

import os
import time

from celery import Celery

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.monitoring.task_events import GroupedTaskEvents

# A worker on a host whose clock is off: time.time() runs this many seconds ahead (negative:
# behind), set before Celery starts consuming; pool children inherit it.
_CLOCK_OFFSET_S = float(os.environ.get("LINK_MQ_TEST_CLOCK_OFFSET_S", "0"))
if _CLOCK_OFFSET_S:
    _host_time = time.time
    time.time = lambda: _host_time() + _CLOCK_OFFSET_S

app = Celery("crash_app", broker=os.environ.get("LINK_MQ_TEST_BROKER"))
app.conf.task_default_queue = "celery"
app.conf.update(
    # Celery's defaults are early acks and a prefetch multiplier of 4; these tests use the
    # project's (late acks, 1) unless a test asks otherwise.
    task_acks_late=os.environ.get("LINK_MQ_TEST_ACKS_LATE", "1") == "1",
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=int(os.environ.get("LINK_MQ_TEST_PREFETCH_MULTIPLIER", "1")),
    task_serializer="json",
    accept_content=["json"],
    broker_transport_options={
        "lease_s": float(os.environ.get("LINK_MQ_TEST_LEASE_S", "2")),
        "polling_interval": 0.1,
    },
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    linkmq_task_events_interval_s=float(os.environ.get("LINK_MQ_TEST_EVENTS_INTERVAL_S", "0.05")),
)
app.steps["consumer"].add(GroupedTaskEvents)


def _record(event: str, number: int) -> None:
    with open(os.environ["LINK_MQ_TEST_RUNS"], "a", encoding="utf-8") as runs:
        runs.write(f"{event} {number} {os.getpid()}\n")


@app.task(name="crash.work")
def work(number: int, duration_s: float) -> None:
    _record("start", number)
    time.sleep(duration_s)
    _record("done", number)


@app.task(name="crash.spawn")
def spawn(number: int, children: int) -> None:
    """Publish follow-up tasks from the pool process: the parent's engine must not leak into
    the forked child (kombu issue #1395 on sqla+)."""
    _record("start", number)
    for child in range(children):
        work.apply_async(args=(number * 100 + child, 0.0))
    _record("done", number)
