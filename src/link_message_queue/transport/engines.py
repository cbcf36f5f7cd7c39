"""SQLAlchemy engines for the transport: one per database and process, never shared with a
forked child (Celery's prefork pool), configured per dialect."""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url

from .errors import TransportOptionError
from .options import TransportOptions

# Execution option marking read-only work, which must not take SQLite's write lock.
READ_ONLY_OPTION = "linkmq_read_only"

_engines: dict[tuple[int, str], sa.Engine] = {}
_engines_lock = threading.Lock()


def database_url(url: str) -> URL:
    """The SQLAlchemy URL behind ``linkmq+…``; plain ``postgresql://`` uses psycopg 3 when
    psycopg2 is not installed."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg2") is None:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise TransportOptionError(
            "an in-memory SQLite database cannot be shared between connections: "
            "use a file, e.g. linkmq+sqlite:///link_mq.sqlite3"
        )
    return parsed


def read_only(engine: sa.Engine) -> sa.Engine:
    """The same engine for reads: on SQLite its transactions begin DEFERRED."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def masked(url: str | URL) -> str:
    """The URL with its password hidden, for logs and CLI output."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable database URL>"


def engine_for(url: str, options: TransportOptions) -> sa.Engine:
    """The process's engine for ``url`` (created on first use)."""
    key = (
        os.getpid(),
        f"{url}|{options.sqlite_synchronous}|{options.busy_timeout_s}|"
        f"{sorted(options.engine_options.items())!r}",
    )
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _create_engine(database_url(url), options)
            _engines[key] = engine
        return engine


def _create_engine(url: URL, options: TransportOptions) -> sa.Engine:
    engine_options: dict[str, Any] = dict(options.engine_options)
    backend = url.get_backend_name()
    if backend == "sqlite":
        connect_args = dict(engine_options.pop("connect_args", {}))
        connect_args.setdefault("timeout", options.busy_timeout_s)
        connect_args.setdefault("check_same_thread", False)
        engine = sa.create_engine(url, connect_args=connect_args, **engine_options)
        _configure_sqlite(engine, options)
        return engine
    if backend == "postgresql":
        connect_args = dict(engine_options.pop("connect_args", {}))
        if url.get_driver_name() == "psycopg":
            connect_args.setdefault("application_name", "link-mq")
        return sa.create_engine(url, connect_args=connect_args, **engine_options)
    if backend in ("mysql", "mariadb"):
        # READ COMMITTED: no gap locks on the claim index, so concurrent claimers (SKIP LOCKED)
        # and acks do not deadlock each other under REPEATABLE READ's range locking.
        engine_options.setdefault("isolation_level", "READ COMMITTED")
    return sa.create_engine(url, **engine_options)


def _configure_sqlite(engine: sa.Engine, options: TransportOptions) -> None:
    synchronous = options.sqlite_synchronous.upper()
    busy_timeout_ms = int(options.busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin, so that
        # every transaction can take the write lock up front (BEGIN IMMEDIATE): two claimers
        # then queue on the busy timeout instead of failing on a lock upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # Reads begin DEFERRED: under WAL they never wait for a writer (even one holding the
        # lock in this very thread, e.g. a caller's transaction during publish_on()).
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def _forget_engines_after_fork() -> None:
    # A forked child must not touch its parent's pooled connections: drop them without
    # closing (closing would disturb the parent's sockets) and start afresh.
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


os.register_at_fork(after_in_child=_forget_engines_after_fork)
