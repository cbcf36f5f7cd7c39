"""The brokers compared: each a name, a Celery broker URL and a way to start from empty."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from link_message_queue.db import engine_for
from link_message_queue.transport import upgrade
from link_message_queue.transport.options import TransportOptions

POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/15"


@dataclass(frozen=True)
class Broker:
    name: str  # e.g. "linkmq+ PostgreSQL"
    transport: str  # linkmq, sqla or redis
    database: str  # PostgreSQL, SQLite or Redis
    url: str  # Celery broker URL
    database_url: str | None  # the SQLAlchemy URL behind it, for SQL brokers
    reset: Callable[[], None]
    transport_options: dict[str, Any] = field(default_factory=dict)  # broker_transport_options


def fresh_postgres(name: str) -> str:
    """Drop and create database ``name``; returns its SQLAlchemy URL."""
    admin = sa.create_engine(
        POSTGRES_ADMIN, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def _prepare_linkmq(database_url: str) -> None:
    upgrade(engine_for(database_url, TransportOptions()), "linkmq_")


def _emptier(database_url: str, tables: tuple[str, ...]) -> Callable[[], None]:
    """Empty the transport's tables in place: both transports keep per-process engines (and
    sqla+ creates its tables once per process), so the database itself must stay."""

    def reset() -> None:
        engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
        existing = set(sa.inspect(engine).get_table_names())
        with engine.begin() as connection:
            for table in tables:
                if table not in existing:
                    continue
                if engine.dialect.name == "postgresql":
                    connection.execute(sa.text(f"TRUNCATE {table} RESTART IDENTITY CASCADE"))
                else:
                    connection.execute(sa.text(f"DELETE FROM {table}"))
        if engine.dialect.name == "sqlite":
            with engine.connect() as connection:
                connection.execute(sa.text("VACUUM"))
        engine.dispose()

    return reset


_SQLA_TABLES = ("kombu_message", "kombu_queue")
# Bindings too: a Flower's event queue is gone after the reset, and a binding left behind would
# make the next run's worker write every event for it as well.
_LINKMQ_TABLES = ("linkmq_message", "linkmq_queue", "linkmq_binding")


def linkmq_postgres_broker(database: str) -> Broker:
    """linkmq+ on a fresh PostgreSQL database named ``database``, migrated."""
    linkmq_db = fresh_postgres(database)
    _prepare_linkmq(linkmq_db)
    return Broker(
        "linkmq+ PostgreSQL",
        "linkmq",
        "PostgreSQL",
        f"linkmq+{linkmq_db}",
        linkmq_db,
        _emptier(linkmq_db, _LINKMQ_TABLES),
    )


def postgres_brokers() -> list[Broker]:
    sqla_db = fresh_postgres("linkmq_bench_sqla")
    return [
        Broker(
            "sqla+ PostgreSQL",
            "sqla",
            "PostgreSQL",
            f"sqla+{sqla_db}",
            sqla_db,
            _emptier(sqla_db, _SQLA_TABLES),
        ),
        linkmq_postgres_broker("linkmq_bench_linkmq"),
    ]


def sqlite_brokers(directory: Path) -> list[Broker]:
    sqla_db = f"sqlite:///{directory / 'sqla.sqlite3'}"
    linkmq_db = f"sqlite:///{directory / 'linkmq.sqlite3'}"
    _prepare_linkmq(linkmq_db)
    return [
        Broker(
            "sqla+ SQLite",
            "sqla",
            "SQLite",
            f"sqla+{sqla_db}",
            sqla_db,
            _emptier(sqla_db, _SQLA_TABLES),
        ),
        Broker(
            "linkmq+ SQLite",
            "linkmq",
            "SQLite",
            f"linkmq+{linkmq_db}",
            linkmq_db,
            _emptier(linkmq_db, _LINKMQ_TABLES),
        ),
    ]


def redis_brokers() -> list[Broker]:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            pass
    except OSError:
        return []

    def reset() -> None:
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()

    return [Broker("Redis", "redis", "Redis", REDIS_URL, None, reset)]


def redis_persistence(url: str = REDIS_URL) -> str:
    """What the Redis at ``url`` keeps on disk, from its configuration: e.g. ``appendonly no,
    save ""`` (nothing: a restart loses every queued task) or ``appendonly yes, appendfsync
    always`` (each write on disk before the reply). Raises redis-py's errors."""
    import redis

    config = redis.Redis.from_url(url).config_get("appendonly", "appendfsync", "save")
    parts = [f"appendonly {config['appendonly']}"]
    if config["appendonly"] == "yes":
        parts.append(f"appendfsync {config['appendfsync']}")
    parts.append(f'save "{config["save"]}"')
    return ", ".join(parts)


@contextmanager
def persisted_redis(directory: Path, name: str = "Celery+Redis fsync") -> Iterator[Broker | None]:
    """A Redis of its own that writes each command to its append-only file and fsyncs it before
    replying (``appendonly yes``, ``appendfsync always``: Redis's setting for not losing an
    acknowledged write, https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/),
    on a free loopback port, its files in ``directory``; stopped on leaving. None where no
    ``redis-server`` can be run. Raises RuntimeError when it starts but does not answer
    within 10 s."""
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "redis.log").open("ab") as log:
            server = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(directory),
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--save",
                    "",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    except FileNotFoundError:
        yield None
        return
    try:
        url = f"redis://127.0.0.1:{port}/0"
        _wait_for_redis(url, server)

        def reset() -> None:
            import redis

            redis.Redis.from_url(url).flushdb()

        yield Broker(name, "redis", "Redis", url, None, reset)
    finally:
        server.terminate()
        server.wait(10)


def _wait_for_redis(url: str, server: subprocess.Popen[bytes]) -> None:
    import redis

    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return
        except redis.ConnectionError as exc:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server on {url} did not answer (exit {server.poll()})"
                ) from exc
            time.sleep(0.05)
