"""The PgQueuer app the benchmark's PgQueuer workers run (``python -m bench.pgqueuer_app``, one
worker process): the same two tasks as the Celery app (bench/app.py), on the database in
``BENCH_PGQUEUER_DSN`` (a libpq URL). A job's payload is its keyword arguments as JSON.

The worker runs through ``pgqueuer.run``, what ``pgq run`` does (PgQueuer 1.6's CLI fails on
its own ``--log-level`` with the installed typer), with what the CLI would take as
``--batch-size 1 --max-concurrent-tasks 2``: jobs claimed one at a time, like the others'
prefetch of 1, and the fewest tasks at once PgQueuer allows for that (twice the batch).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from pgqueuer import Job, PgQueuer, PsycopgDriver, run

from .task_records import record_slow, record_work


@asynccontextmanager
async def create() -> AsyncIterator[PgQueuer]:
    """A PgQueuer on its own autocommit connection (as PgQueuer requires), with the tasks."""
    connection = await psycopg.AsyncConnection.connect(
        os.environ["BENCH_PGQUEUER_DSN"], autocommit=True
    )
    pgq = PgQueuer(PsycopgDriver(connection))

    @pgq.entrypoint("bench.work")
    async def work(job: Job) -> None:
        record_work(**json.loads(job.payload or b"{}"))

    @pgq.entrypoint("bench.slow")
    async def slow(job: Job) -> None:
        # In a thread: the event loop keeps sending the job's heartbeat meanwhile.
        await asyncio.to_thread(record_slow, **json.loads(job.payload or b"{}"))

    async with connection:
        yield pgq


if __name__ == "__main__":
    # SIGTERM stops the worker as it would stop ``pgq run``.
    asyncio.run(run(create, batch_size=1, max_concurrent_tasks=2))
