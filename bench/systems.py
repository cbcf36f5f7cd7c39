"""The systems under test in the side-by-side comparison: linkmq+ and the peers users pick
instead of it. Each is one small adapter behind ``System``, so the scenarios
(bench/comparison.py) are written once.

- ``CelerySystem``: Celery on a kombu broker: linkmq+, Redis, kombu's own ``pgmq`` transport
  (PGMQ, installed from the SQL script the ``pgmq`` package ships where the extension is not).
- ``ProcrastinateSystem``: procrastinate, its own worker processes.
- ``DramatiqPgSystem``: dramatiq on dramatiq-pg's PostgreSQL broker, dramatiq's CLI worker.
- ``PgQueuerSystem``: PgQueuer, its own CLI worker processes.

Every system gets its own fresh PostgreSQL database (Redis its own database number).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa

from . import scenarios
from .brokers import Broker, fresh_postgres, redis_brokers

WORKER_PROCESSES = 2  # one per core of the benchmark machine, for every system


class System(Protocol):
    """A task queue under test. Tasks are bench/task_records.py's ``work`` and ``slow``."""

    name: str

    def reset(self) -> None:
        """Start from an empty queue."""

    def publish(self, count: int, rate_per_s: float | None = None) -> float:
        """One untimed warm-up task, then ``count`` ``work`` tasks one by one (each committed on
        its own), at ``rate_per_s`` or as fast as it goes; returns messages per second."""

    def publish_bulk(self, count: int) -> float | None:
        """One untimed warm-up task, then ``count`` ``work`` tasks in one call of the system's
        bulk API; returns messages per second (None: the system has no bulk API)."""

    def publish_slow(self, count: int, duration_s: float) -> None:
        """``slow`` tasks numbered 0 … ``count`` - 1 that each take ``duration_s``."""

    def start_worker(self, workdir: Path, out: Path) -> scenarios.Worker:
        """``WORKER_PROCESSES`` worker processes writing their tasks' records to ``out``."""


@dataclass(frozen=True)
class CelerySystem:
    """Celery on ``broker``; prefork worker with ``WORKER_PROCESSES`` children. Bulk is
    ``send_many`` in one transaction on linkmq+ (and, reported beside it, a
    ``group(...).apply_async()`` inside ``publish_on()``), a ``group`` on other brokers."""

    broker: Broker

    @property
    def name(self) -> str:
        return self.broker.name

    def reset(self) -> None:
        self.broker.reset()

    def publish(self, count: int, rate_per_s: float | None = None) -> float:
        return scenarios.publish(
            self.broker.url,
            count,
            rate_per_s=rate_per_s,
            transport_options=self.broker.transport_options,
        )

    def publish_unflushed(self, count: int) -> float | None:
        """linkmq+ on PostgreSQL only (None elsewhere): one by one with the transport option
        ``publish_synchronous_commit="off"``, so no publish waits for the WAL flush."""
        if not self._transactional or not self.broker.url.startswith("linkmq+postgresql"):
            return None
        return scenarios.publish(
            self.broker.url,
            count,
            transport_options=self.broker.transport_options | {"publish_synchronous_commit": "off"},
        )

    def publish_bulk(self, count: int) -> float:
        """linkmq+: ``send_many`` (one write in the caller's transaction); other brokers: a
        Celery ``group``."""
        if not self._transactional:
            return self._publish_group(count)
        from link_message_queue import send_many

        app, engine = self._bulk_setup()
        work = app.task(name="bench.work", shared=False)(_work_stub)
        started = time.perf_counter()
        with engine.begin() as connection:
            send_many(work, [(time.time(), 0.0) for _ in range(count)], connection)
        elapsed = time.perf_counter() - started
        engine.dispose()
        return count / elapsed

    def publish_bulk_group(self, count: int) -> float | None:
        """linkmq+ only (None elsewhere): a Celery ``group(...).apply_async()`` inside
        ``publish_on()``, the bulk path that needs no API of ours."""
        return self._publish_group(count) if self._transactional else None

    @property
    def _transactional(self) -> bool:
        return self.broker.transport == "linkmq" and bool(self.broker.database_url)

    def _bulk_setup(self) -> tuple[Any, sa.Engine]:
        app = scenarios.producer_app(self.broker.url, self.broker.transport_options)
        app.send_task("bench.work", args=(time.time(), 0.0))  # warm-up: connects, declares
        assert self.broker.database_url is not None
        engine = sa.create_engine(self.broker.database_url)
        engine.connect().close()  # the pool's connection, opened before the clock starts
        return app, engine

    def _publish_group(self, count: int) -> float:
        from celery import group

        from link_message_queue.transport import publish_on

        if not self._transactional:
            app = scenarios.producer_app(self.broker.url, self.broker.transport_options)
            app.send_task("bench.work", args=(time.time(), 0.0))  # warm-up
            started = time.perf_counter()
            group(
                app.signature("bench.work", args=(time.time(), 0.0)) for _ in range(count)
            ).apply_async()
            return count / (time.perf_counter() - started)
        app, engine = self._bulk_setup()
        started = time.perf_counter()
        tasks = group(app.signature("bench.work", args=(time.time(), 0.0)) for _ in range(count))
        with engine.begin() as connection, publish_on(connection):
            tasks.apply_async()
        elapsed = time.perf_counter() - started
        engine.dispose()
        return count / elapsed

    def publish_slow(self, count: int, duration_s: float) -> None:
        app = scenarios.producer_app(self.broker.url, self.broker.transport_options)
        with app.producer_or_acquire() as producer:
            for number in range(count):
                app.send_task("bench.slow", args=(number, duration_s), producer=producer)

    def start_worker(self, workdir: Path, out: Path) -> scenarios.Worker:
        return scenarios.start_worker(self.broker, workdir, concurrency=WORKER_PROCESSES, out=out)


@dataclass(frozen=True)
class ProcrastinateSystem:
    """procrastinate with its defaults (LISTEN/NOTIFY, jobs kept after they ran):
    ``WORKER_PROCESSES`` worker processes of concurrency 1 each. Bulk is ``batch_defer``."""

    dsn: str  # libpq URL of its database
    name: str = "procrastinate"

    @contextmanager
    def _app(self) -> Iterator[Any]:
        import procrastinate

        from .procrastinate_app import app

        connector = procrastinate.PsycopgConnector(conninfo=self.dsn)
        with app.replace_connector(connector) as opened, opened.open():
            yield opened

    def prepare(self) -> None:
        with self._app() as app:
            app.schema_manager.apply_schema()

    def reset(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as connection:
            connection.execute(
                "TRUNCATE procrastinate_jobs, procrastinate_workers RESTART IDENTITY CASCADE"
            )

    def publish(self, count: int, rate_per_s: float | None = None) -> float:
        from .procrastinate_app import work

        with self._app():
            work.defer(sent_at=time.time(), duration_s=0.0)  # warm-up
            started = time.perf_counter()
            for _ in scenarios.paced(count, rate_per_s):
                work.defer(sent_at=time.time(), duration_s=0.0)
            elapsed = time.perf_counter() - started
        return count / elapsed

    def publish_bulk(self, count: int) -> float:
        from .procrastinate_app import work

        with self._app():
            work.defer(sent_at=time.time(), duration_s=0.0)  # warm-up
            started = time.perf_counter()
            work.batch_defer(*({"sent_at": time.time(), "duration_s": 0.0} for _ in range(count)))
            elapsed = time.perf_counter() - started
        return count / elapsed

    def publish_slow(self, count: int, duration_s: float) -> None:
        from .procrastinate_app import slow

        with self._app():
            for number in range(count):
                slow.defer(number=number, duration_s=duration_s)

    def start_worker(self, workdir: Path, out: Path) -> scenarios.Worker:
        command = [
            sys.executable,
            "-m",
            "procrastinate",
            "--app=bench.procrastinate_app.app",
            "worker",
            "--queues=bench",
            "--concurrency=1",
        ]
        env = {"BENCH_PROCRASTINATE_DSN": self.dsn}
        return _start_processes(command, env, workdir / "procrastinate.log", out, WORKER_PROCESSES)


@dataclass(frozen=True)
class DramatiqPgSystem:
    """dramatiq on dramatiq-pg's broker as dramatiq's documentation runs it: its CLI worker with
    ``WORKER_PROCESSES`` processes and dramatiq's defaults otherwise (8 threads a process, a
    prefetch of twice the threads, acks after the task), dramatiq-pg's LISTEN/NOTIFY (its
    only mode; messages kept as done). dramatiq-pg 0.12 (the latest release) sleeps whenever
    a consumer holds its prefetch of unacked messages, backing off up to 1 s and never
    resetting that back-off (``PostgresConsumer.__next__``), so a drain runs in bursts of one
    prefetch a second per process: that is the broker's own behaviour, not a setting here
    (docs/benchmarks.md). dramatiq has no bulk publish (its ``group`` enqueues one by one), so
    there is no bulk figure."""

    dsn: str  # libpq URL of its database
    name: str = "dramatiq-pg"

    def prepare(self) -> None:
        import psycopg
        from dramatiq_pg import generate_init_sql

        with psycopg.connect(self.dsn, autocommit=True) as connection:
            connection.execute(generate_init_sql())

    def reset(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as connection:
            connection.execute("TRUNCATE dramatiq.queue")

    @contextmanager
    def _broker(self) -> Iterator[Any]:
        from .dramatiq_app import broker

        opened = broker(self.dsn)
        try:
            yield opened
        finally:
            opened.close()
            opened.pool.closeall()

    def publish(self, count: int, rate_per_s: float | None = None) -> float:
        from dramatiq import Message

        def work() -> Message[Any]:
            return Message(
                queue_name="bench",
                actor_name="bench.work",
                args=(time.time(), 0.0),
                kwargs={},
                options={},
            )

        with self._broker() as broker:
            broker.enqueue(work())  # warm-up
            started = time.perf_counter()
            for _ in scenarios.paced(count, rate_per_s):
                broker.enqueue(work())
            elapsed = time.perf_counter() - started
        return count / elapsed

    def publish_bulk(self, count: int) -> float | None:
        return None

    def publish_slow(self, count: int, duration_s: float) -> None:
        from dramatiq import Message

        with self._broker() as broker:
            for number in range(count):
                broker.enqueue(
                    Message(
                        queue_name="bench",
                        actor_name="bench.slow",
                        args=(number, duration_s),
                        kwargs={},
                        options={},
                    )
                )

    def start_worker(self, workdir: Path, out: Path) -> scenarios.Worker:
        command = [
            sys.executable,
            "-m",
            "dramatiq",
            "bench.dramatiq_app",
            f"--processes={WORKER_PROCESSES}",
            # dramatiq's defaults, as its CLI reference gives them: ``--threads`` 8 per process;
            # ``dramatiq_queue_prefetch`` unset, i.e. twice the threads (dramatiq's
            # docs/source/reference.rst, environment variables). A prefetch of 1 with 1 thread,
            # as before, left dramatiq-pg's consumer asleep in its back-off after every message.
            "--queues=bench",
        ]
        env = {"BENCH_DRAMATIQ_DSN": self.dsn}
        return _start_processes(command, env, workdir / "dramatiq.log", out, 1)


@dataclass(frozen=True)
class PgQueuerSystem:
    """PgQueuer as its documentation runs it (bench/pgqueuer_app.py, as ``pgq run`` runs it):
    ``WORKER_PROCESSES`` worker processes, each on one asyncpg connection with ``run``'s
    defaults (LISTEN/NOTIFY, batches of 10, a picked job whose worker sends no heartbeat for
    30 s is picked again). The publisher enqueues through the sync psycopg driver, PgQueuer's
    driver for enqueuing from blocking code. Bulk is one ``enqueue`` of lists (one
    statement)."""

    dsn: str  # libpq URL of its database
    name: str = "PgQueuer"

    def _run(self, operation: Callable[[Any], Any]) -> None:
        import asyncio

        import psycopg
        from pgqueuer import PsycopgDriver, Queries

        async def run() -> None:
            connection = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            async with connection:
                await operation(Queries(PsycopgDriver(connection)))

        asyncio.run(run())

    def prepare(self) -> None:
        self._run(lambda queries: queries.install())

    def reset(self) -> None:
        async def clear(queries: Any) -> None:
            await queries.clear_queue()
            await queries.clear_queue_log()

        self._run(clear)

    @contextmanager
    def _queries(self) -> Iterator[Any]:
        import psycopg
        from pgqueuer.db import SyncPsycopgDriver
        from pgqueuer.queries import SyncQueries

        with psycopg.connect(self.dsn, autocommit=True) as connection:
            yield SyncQueries(SyncPsycopgDriver(connection))

    @staticmethod
    def _payload(**kwargs: Any) -> bytes:
        return json.dumps(kwargs).encode()

    def publish(self, count: int, rate_per_s: float | None = None) -> float:
        with self._queries() as queries:
            queries.enqueue("bench.work", self._payload(sent_at=time.time(), duration_s=0.0))
            started = time.perf_counter()
            for _ in scenarios.paced(count, rate_per_s):
                queries.enqueue("bench.work", self._payload(sent_at=time.time(), duration_s=0.0))
            elapsed = time.perf_counter() - started
        return count / elapsed

    def publish_bulk(self, count: int) -> float | None:
        with self._queries() as queries:
            queries.enqueue("bench.work", self._payload(sent_at=time.time(), duration_s=0.0))
            started = time.perf_counter()
            payloads: list[bytes | None] = [
                self._payload(sent_at=time.time(), duration_s=0.0) for _ in range(count)
            ]
            queries.enqueue(["bench.work"] * count, payloads, [0] * count)
            elapsed = time.perf_counter() - started
        return count / elapsed

    def publish_slow(self, count: int, duration_s: float) -> None:
        with self._queries() as queries:
            for number in range(count):
                queries.enqueue("bench.slow", self._payload(number=number, duration_s=duration_s))

    def start_worker(self, workdir: Path, out: Path) -> scenarios.Worker:
        command = [sys.executable, "-m", "bench.pgqueuer_app"]
        env = {"BENCH_PGQUEUER_DSN": self.dsn}
        return _start_processes(command, env, workdir / "pgqueuer.log", out, WORKER_PROCESSES)


def _start_processes(
    command: list[str], env: dict[str, str], log_path: Path, out: Path, count: int
) -> scenarios.Worker:
    """``count`` processes of ``command`` from the repository, with ``env`` added, writing
    their tasks' records to ``out`` and their output to ``log_path``."""
    log = log_path.open("ab")
    environment = {
        **os.environ,
        **env,
        "BENCH_OUT": str(out),
        "PYTHONPATH": f"{scenarios.REPO / 'src'}:{scenarios.REPO}",
    }
    processes = [
        subprocess.Popen(
            command,
            cwd=scenarios.REPO,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, for Worker.kill()
        )
        for _ in range(count)
    ]
    log.close()  # the processes write to their own copies
    return scenarios.Worker(processes, out)


def _work_stub(sent_at: float, duration_s: float) -> None:
    """The producer's stand-in for bench.app's ``bench.work`` (its signature, for send_many's
    argument check); the workers run the real one."""
    raise AssertionError("bench.work runs on the workers")


def libpq_url(database_url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq takes it (``postgresql://…``)."""
    url = sa.engine.make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class PeerUnavailableError(Exception):
    """A peer cannot be had on this machine; the message says why and what to do."""


def _pgmq_system(database: str) -> CelerySystem:
    """Celery on kombu's ``pgmq`` transport, on a fresh database with PGMQ installed: the
    extension where the server has it, else the SQL script the ``pgmq`` package ships."""
    try:
        from pgmq.install import PGMQInstallError, install_pgmq_from_sql
    except ImportError as exc:
        raise PeerUnavailableError(f"{exc} (pip install -e '.[bench]')") from exc

    database_url = fresh_postgres(database)
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        available = connection.execute(
            sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'pgmq'")
        ).scalar_one()
    if available:
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE EXTENSION pgmq"))
    else:
        try:
            install_pgmq_from_sql(dsn=libpq_url(database_url))
        except PGMQInstallError as exc:
            raise PeerUnavailableError(f"PGMQ's SQL script did not install: {exc}") from exc

    def reset() -> None:
        with engine.begin() as connection:
            connection.execute(sa.text("SELECT pgmq.purge_queue(queue_name) FROM pgmq.meta"))

    url = sa.engine.make_url(database_url)
    return CelerySystem(
        Broker(
            "kombu-pgmq",
            "pgmq",
            "PostgreSQL",
            f"pgmq://{url.username}@{url.host}:{url.port}/{url.database}",
            database_url,
            reset,
            {
                # Installed above; kombu would otherwise CREATE EXTENSION (the server's).
                "init_extension": False,
                # LISTEN/NOTIFY wake-ups instead of long polls, as in Celery's PGMQ guide
                # (docs/getting-started/backends-and-brokers/pgmq.rst, "Polling and
                # notifications"): ``use_notify`` with ``wait_time_seconds`` 0. With the
                # default long poll (10 s, checked every ``poll_interval_ms`` 100 ms) and
                # ``polling_interval`` 1 s, a worker whose prefetch window is full sleeps 1 s
                # before it reads again: 4 tasks/s of drain, 15 s behind at 20 msg/s.
                "use_notify": True,
                "wait_time_seconds": 0,
                # The same guide's "check more often" value (default 1 s). The transport still
                # sleeps this long whenever the prefetch window is full (no insert to wake
                # it): that is kombu-pgmq's drain floor at a prefetch of 1, docs/benchmarks.md.
                "polling_interval": 0.1,
                # PGMQ's "no throttling" (kombu's default 250 ms lets 4 inserts in 5 at
                # 20 msg/s go unannounced: p50 60 ms instead of 8 to 16 ms, measured here).
                "notify_throttle_interval_ms": 0,
            },
        )
    )


def _on_fresh_database(
    modules: tuple[str, ...],
    system: Callable[[str], ProcrastinateSystem | DramatiqPgSystem | PgQueuerSystem],
) -> Callable[[str], System]:
    """A peer's maker: ``system`` (built from a libpq URL) on a fresh database, its schema
    installed; ``PeerUnavailableError`` when one of its packages ``modules`` cannot be
    imported."""

    def make(database: str) -> System:
        try:
            for module in modules:
                importlib.import_module(module)
        except ImportError as exc:
            raise PeerUnavailableError(f"{exc} (pip install -e '.[bench]')") from exc
        made = system(libpq_url(fresh_postgres(database)))
        made.prepare()
        return made

    return make


def comparison_systems(
    linkmq: Broker, database_prefix: str = "linkmq_bench"
) -> tuple[list[System], list[str]]:
    """linkmq+ on ``linkmq`` (PostgreSQL) and every peer that can be had here, each peer on a
    fresh database ``{database_prefix}_{peer}``; and a note for each one skipped, saying why."""
    systems: list[System] = [CelerySystem(linkmq)]
    notes: list[str] = []
    peers: list[tuple[str, Callable[[str], System]]] = [
        ("procrastinate", _on_fresh_database(("procrastinate",), ProcrastinateSystem)),
        ("kombu-pgmq", _pgmq_system),
        ("dramatiq-pg", _on_fresh_database(("dramatiq_pg",), DramatiqPgSystem)),
        # asyncpg: its workers' driver (bench/pgqueuer_app.py).
        ("PgQueuer", _on_fresh_database(("pgqueuer", "asyncpg"), PgQueuerSystem)),
    ]
    for name, make in peers:
        try:
            systems.append(make(f"{database_prefix}_{name.lower().replace('-', '_')}"))
        except PeerUnavailableError as exc:
            notes.append(f"{name} skipped: {exc}")
    redis = redis_brokers()
    if redis:
        systems.append(CelerySystem(replace(redis[0], name="Celery+Redis")))
    else:
        notes.append("Celery+Redis skipped: no Redis answers on 127.0.0.1:6379")
    return systems, notes
