"""Real databases for tests: a SQLite file per test, a fresh PostgreSQL database per module;
and the other real services some tests need (Redis, RabbitMQ, MariaDB), found or skipped.

PostgreSQL is found at ``LINK_MQ_TEST_POSTGRES_URL`` (default: trust auth on 127.0.0.1:5432).
If it is down, the setup tries to start a locally installed cluster. When none can be had,
tests that need it skip locally and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
_START_TIMEOUT_S = 30.0


def postgres_admin_url() -> str:
    return os.environ.get("LINK_MQ_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _reachable(url: str) -> str | None:
    """None when PostgreSQL answers, else why not."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        return str(exc.orig).strip()
    finally:
        engine.dispose()
    return None


def _start_local_cluster() -> None:
    """Start every installed Debian PostgreSQL cluster that is down (best effort: the
    reachability check after it decides)."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return
    for version in sorted(os.listdir("/etc/postgresql")):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            check=False,
            capture_output=True,
            timeout=60,
        )


def unavailable(message: str) -> NoReturn:
    """What a test does when something outside the project it needs is missing: skip locally,
    fail under ``CI=true`` (where .ci/run starts or installs it)."""
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: what a test needs must be here)")
    pytest.skip(message)


def require_service(name: str, port: int) -> None:
    """Skip (fail under CI=true) unless ``name`` answers on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        unavailable(f"{name} is not answering on 127.0.0.1:{port}")


def ensure_postgres() -> str:
    """The admin URL of a running PostgreSQL, or skip (fail under CI=true)."""
    url = postgres_admin_url()
    problem = _reachable(url)
    if problem is not None:
        _start_local_cluster()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while (problem := _reachable(url)) is not None and time.monotonic() < deadline:
            time.sleep(0.5)
    if problem is not None:
        unavailable(f"PostgreSQL is not reachable at {make_url(url)!r}: {problem}")
    return url


@contextmanager
def fresh_postgres_database(admin_url: str, label: str) -> Iterator[str]:
    """A new, empty database for the duration of the block; dropped afterwards."""
    name = f"linkmq_{label[:30]}_{uuid.uuid4().hex[:8]}".lower()
    safe_name = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{safe_name}"'))
        yield make_url(admin_url).set(database=safe_name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{safe_name}" WITH (FORCE)'))
        admin.dispose()


def sqlite_deferred_engine(url: str) -> sa.Engine:
    """SQLAlchemy's pysqlite recipe for real transactions: a plain (DEFERRED) ``BEGIN``, as an
    application that followed it would have (what ``sqlite_engine()`` replaces)."""
    engine = sa.create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.isolation_level = None  # type: ignore[attr-defined]

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine
