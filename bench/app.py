"""The Celery app the benchmark workers run; configured from BENCH_* environment variables
(BENCH_TRANSPORT_OPTIONS: JSON broker transport options, to compare settings such as
``{"transient_flush_s": 0.01}`` in one run)."""

from __future__ import annotations

import json
import os
import time

from celery import Celery

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.task_events import GroupedTaskEvents

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
    started = time.time()
    if duration_s:
        time.sleep(duration_s)
    with open(os.environ["BENCH_OUT"], "a", encoding="utf-8") as out:
        out.write(f"{sent_at:.6f} {started:.6f} {time.time():.6f}\n")
