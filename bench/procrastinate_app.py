"""The procrastinate app the benchmark's procrastinate workers run: the same two tasks as the
Celery app (bench/app.py), on the database in ``BENCH_PROCRASTINATE_DSN`` (a libpq URL)."""

from __future__ import annotations

import os

import procrastinate

from .task_records import record_slow, record_work

QUEUE = "bench"

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=os.environ.get("BENCH_PROCRASTINATE_DSN", ""))
)


@app.task(name="bench.work", queue=QUEUE)
def work(sent_at: float, duration_s: float) -> None:
    record_work(sent_at, duration_s)


@app.task(name="bench.slow", queue=QUEUE)
def slow(number: int, duration_s: float) -> None:
    record_slow(number, duration_s)
