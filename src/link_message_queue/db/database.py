"""One ``Database`` per database and process: its engine (and the read-only view of it), its
tables and its URL for logs, built on first use and rebuilt in a forked child.

Fork-safety lives here and nowhere else. A child of ``os.fork()`` (Celery's prefork pool) must
not touch its parent's pooled connections, threads or locks: right after a fork, in the child,
every engine drops its pool without closing the parent's sockets, the cache is emptied (the next
``database_for`` builds afresh), and then the callbacks registered with ``after_fork_in_child``
run, in the order they were registered (the transport's held connections and writer threads,
the Celery app's runtime). Objects kept across a fork ask ``Database.forked``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import sqlalchemy as sa

from .engines import EngineOptions, create_engine, engine_key, masked, read_only
from .schema import ProcessTables, QueueTables, process_tables, queue_tables


class DatabaseOptions(EngineOptions, Protocol):
    """What a ``Database`` is built from: the engine's options and the tables' prefix;
    ``TransportOptions`` is one (see its fields)."""

    @property
    def table_prefix(self) -> str:
        """The prefix of every table name, a lower-case SQL identifier (``linkmq_``)."""


@dataclass(frozen=True, eq=False)
class Database:
    """The application database as this process uses it: ``engine`` (shared by everything in the
    process that uses the same URL and engine options), ``read_only_engine`` (the same pool; on
    SQLite its transactions begin DEFERRED), the queue ``tables`` and the workflow processor's
    ``process_tables`` under one prefix, and ``masked_url`` (the password hidden) for logs.
    Obtained with ``database_for``, never built directly."""

    url: str  # a SQLAlchemy URL, as after ``linkmq+``
    engine: sa.Engine
    tables: QueueTables
    process_tables: ProcessTables
    read_only_engine: sa.Engine = field(init=False)
    masked_url: str = field(init=False)
    pid: int = field(init=False)  # the process it was built in

    def __post_init__(self) -> None:
        object.__setattr__(self, "read_only_engine", read_only(self.engine))
        object.__setattr__(self, "masked_url", masked(self.engine.url))
        object.__setattr__(self, "pid", os.getpid())

    @property
    def dialect(self) -> str:
        """SQLAlchemy's name of the database: ``sqlite``, ``postgresql``, ``mysql``, ``mariadb``."""
        return self.engine.dialect.name

    @property
    def table_prefix(self) -> str:
        """The prefix of every table name."""
        return self.tables.prefix

    @property
    def forked(self) -> bool:
        """True in a child forked after this object was built: get a new one with
        ``database_for`` (its engine's pool was emptied at the fork)."""
        return self.pid != os.getpid()


_lock = threading.Lock()
_engines: dict[str, sa.Engine] = {}
_databases: dict[tuple[str, str], Database] = {}
_after_fork: list[Callable[[], None]] = []


def engine_for(url: str, options: EngineOptions) -> sa.Engine:
    """This process's engine for ``url`` (a SQLAlchemy URL, as after ``linkmq+``) and the engine
    ``options``, created on first use (``engines.create_engine``) and shared from then on, also
    by every ``Database`` on it. Raises ``DriverMissingError`` when the driver is not installed,
    ``TransportOptionError`` for an in-memory SQLite URL or a database SQLAlchemy does not
    know."""
    key = engine_key(url, options)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = create_engine(url, options)
        return engine


def database_for(url: str, options: DatabaseOptions) -> Database:
    """This process's ``Database`` for ``url`` (a SQLAlchemy URL, as after ``linkmq+``), the
    engine ``options`` and ``options.table_prefix``: built on first use, the same object on every
    later call, a new one in a forked child. Connects to nothing. Raises as ``engine_for``."""
    key = (engine_key(url, options), options.table_prefix)
    database = _databases.get(key)
    if database is not None:
        return database
    engine = engine_for(url, options)
    with _lock:
        database = _databases.get(key)
        if database is None:
            prefix = options.table_prefix
            database = Database(url, engine, queue_tables(prefix), process_tables(prefix))
            _databases[key] = database
        return database


def after_fork_in_child(callback: Callable[[], None]) -> None:
    """Run ``callback()`` in every child this process forks from now on, right after the fork
    and after the databases were forgotten: for objects that hold a connection, a thread or a
    lock of the parent. If one raises, the others still run; then the first exception is raised
    from the fork hook, where Python reports it (as for any ``os.register_at_fork`` hook)."""
    with _lock:
        _after_fork.append(callback)


def _forget_databases_in_child() -> None:
    global _lock  # noqa: PLW0603 - a lock held by a parent's thread at the fork stays held
    _lock = threading.Lock()
    for engine in _engines.values():
        # Drop the pool without closing it: closing would disturb the parent's sockets.
        engine.dispose(close=False)
    _engines.clear()
    _databases.clear()
    failures: list[BaseException] = []
    for callback in list(_after_fork):
        try:
            callback()
        except BaseException as exc:  # the others must still run; raised below
            failures.append(exc)
    if failures:
        raise failures[0]


os.register_at_fork(after_in_child=_forget_databases_in_child)
