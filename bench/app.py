"""The Celery app the benchmark workers run; configured from BENCH_* environment variables
(BENCH_TRANSPORT_OPTIONS: JSON broker transport options, to compare settings such as
``{"transient_flush_s": 0.01}`` in one run)."""

from __future__ import annotations

import json
import os

from celery import Celery

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.monitoring.task_events import GroupedTaskEvents

from .task_records import record_slow, record_work

app = Celery("bench", broker=os.environ.get("BENCH_BROKER"))
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    task_default_queue="bench",
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    broker_transport_options=json.loads(os.environ.get("BENCH_TRANSPORT_OPTIONS") or "{}"),
    # BENCH_REMOTE_CONTROL=0: no remote-control queue, i.e. nothing of monitoring at all.
    worker_enable_remote_control=os.environ.get("BENCH_REMOTE_CONTROL", "1") != "0",
)
# As link_message_queue.celery_app: task events in groups (a no-op where Celery's event loop
# groups them already, as on Redis).
app.steps["consumer"].add(GroupedTaskEvents)


@app.task(name="bench.work")
def work(sent_at: float, duration_s: float) -> None:
    record_work(sent_at, duration_s)


@app.task(name="bench.slow")
def slow(number: int, duration_s: float) -> None:
    record_slow(number, duration_s)
