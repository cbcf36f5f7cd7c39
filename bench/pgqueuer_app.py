"""The PgQueuer app the benchmark's PgQueuer workers run (``python -m bench.pgqueuer_app``, one
worker process): the same two tasks as the Celery app (bench/app.py), on the database in
``BENCH_PGQUEUER_DSN`` (a libpq URL). A job's payload is its keyword arguments as JSON.

Set up as PgQueuer's documentation sets a worker up for throughput and latency:

- an asyncpg connection (``AsyncpgDriver``), as in PgQueuer's README quick start and its
  performance-tuning guide ("use a direct asyncpg connection (not a pool) for the
  QueueManager"). ``PsycopgDriver`` waits for notifications inside psycopg's ``notifies()``,
  which holds the connection's lock for up to 1 s (psycopg issue #340), so the worker's own
  queries can wait behind it;
- ``run``'s defaults (``batch_size`` 10, ``max_concurrent_tasks`` unlimited, LISTEN/NOTIFY with
  a 30 s poll fallback): the guide raises ``batch_size`` for short jobs, never lowers it.

Measured here while choosing (2026-12-03, one run each, 1,000 drained, 100 at 20 msg/s;
machine shared): psycopg with batches of 1 (as before) drain 303 tasks/s, p50/p99 56/1,063 ms;
asyncpg, batches of 1: 388, 5.7/70; psycopg, defaults: 1,823, 8.9/127; asyncpg, defaults:
1,558, 7.0/35.

The worker runs through ``pgqueuer.run``, what ``pgq run`` does (PgQueuer 1.6's CLI fails on
its own ``--log-level`` with the installed typer).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from pgqueuer import AsyncpgDriver, Job, PgQueuer, run

from .task_records import record_slow, record_work


@asynccontextmanager
async def create() -> AsyncIterator[PgQueuer]:
    """A PgQueuer on its own asyncpg connection (autocommit, as PgQueuer requires), with the
    tasks."""
    connection = await asyncpg.connect(os.environ["BENCH_PGQUEUER_DSN"])
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("bench.work")
    async def work(job: Job) -> None:
        record_work(**json.loads(job.payload or b"{}"))

    @pgq.entrypoint("bench.slow")
    async def slow(job: Job) -> None:
        # In a thread: the event loop keeps sending the job's heartbeat meanwhile.
        await asyncio.to_thread(record_slow, **json.loads(job.payload or b"{}"))

    try:
        yield pgq
    finally:
        await connection.close()


if __name__ == "__main__":
    # SIGTERM stops the worker as it would stop ``pgq run``.
    asyncio.run(run(create))
