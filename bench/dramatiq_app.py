"""The dramatiq app the benchmark's dramatiq-pg workers run (``dramatiq bench.dramatiq_app``):
the same two tasks as the Celery app (bench/app.py), on dramatiq-pg's broker on the database
in ``BENCH_DRAMATIQ_DSN`` (a libpq URL). Imported by the worker processes only: the publisher
builds its own broker (bench/systems.py)."""

from __future__ import annotations

import os

import dramatiq

from .task_records import record_slow, record_work

QUEUE = "bench"


def broker(dsn: str) -> dramatiq.Broker:
    """dramatiq-pg's broker on ``dsn`` with dramatiq's default middleware but Prometheus (an
    HTTP exporter per worker, nothing the other systems run) and without a result backend."""
    from dramatiq import middleware
    from dramatiq_pg import PostgresBroker

    defaults = [m for m in middleware.default_middleware if m is not middleware.Prometheus]
    # dramatiq-pg opens minconn (default: maxconn, 16) connections up front: a worker needs
    # three (LISTEN, consume, ack).
    return PostgresBroker(
        url=f"{dsn}?minconn=1&maxconn=8", results=False, middleware=[m() for m in defaults]
    )


dramatiq.set_broker(broker(os.environ.get("BENCH_DRAMATIQ_DSN", "")))


@dramatiq.actor(actor_name="bench.work", queue_name=QUEUE, max_retries=0)
def work(sent_at: float, duration_s: float) -> None:
    record_work(sent_at, duration_s)


@dramatiq.actor(actor_name="bench.slow", queue_name=QUEUE, max_retries=0)
def slow(number: int, duration_s: float) -> None:
    record_slow(number, duration_s)
