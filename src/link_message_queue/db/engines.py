"""SQLAlchemy engines: how one is created and configured per dialect (the process's cached engine
is :mod:`link_message_queue.db.database`'s), the ``linkmq+`` URL behind it, and the same SQLite
set-up for an application's own engine (``sqlite_engine``, ``configure_sqlite_engine``)."""

from __future__ import annotations

import importlib.util
import math
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url

from .errors import DriverMissingError, TransportOptionError

_T = TypeVar("_T")

# SQLite's defaults (the transport options ``busy_timeout_s`` and ``sqlite_synchronous``).
DEFAULT_BUSY_TIMEOUT_S = 30.0
DEFAULT_SQLITE_SYNCHRONOUS = "NORMAL"
_SYNCHRONOUS_LEVELS = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})

# Execution option marking read-only work, which must not take SQLite's write lock.
READ_ONLY_OPTION = "linkmq_read_only"

# The driver each database is used with, and the extra that installs it
# (``pip install 'link-message-queue[<extra>]'``). SQLite's driver comes with Python.
DRIVER_EXTRAS: dict[str, tuple[str, str]] = {
    "postgresql": ("psycopg", "postgres"),
    "mysql": ("pymysql", "mysql"),
    "mariadb": ("pymysql", "mysql"),
}
_SUPPORTED = (
    "sqlite:///file.db, postgresql+psycopg://… (pip install 'link-message-queue[postgres]') "
    "and mysql+pymysql://… (pip install 'link-message-queue[mysql]')"
)


class EngineOptions(Protocol):
    """What an engine is configured from; ``TransportOptions`` is one (see its fields)."""

    @property
    def busy_timeout_s(self) -> float:
        """Seconds SQLite waits for the write lock."""

    @property
    def sqlite_synchronous(self) -> str:
        """SQLite's ``synchronous`` pragma: OFF, NORMAL, FULL or EXTRA."""

    @property
    def engine_options(self) -> Mapping[str, Any]:
        """Extra keyword arguments for ``sqlalchemy.create_engine``."""


# What a linkmq+ broker URL looks like, for error messages.
LINKMQ_URL_FORMS = (
    "linkmq+<SQLAlchemy URL>, e.g. linkmq+sqlite:///path.db or "
    "linkmq+postgresql+psycopg://user:password@host/db"
)

# Engines whose SQLite connections are set up here (transport's or an application's).
_sqlite_configured: weakref.WeakSet[sa.Engine] = weakref.WeakSet()
_sqlite_configured_lock = threading.Lock()


def database_url(url: str) -> URL:
    """The SQLAlchemy URL behind ``linkmq+…``; plain ``postgresql://`` uses psycopg 3 when
    psycopg2 is not installed. Raises ``TransportOptionError`` naming the expected form when
    ``url`` is not a database URL (empty, or ``sqlite`` with no ``://``), and for an in-memory
    SQLite database."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        # The URL is not shown: unparseable, its password could not be masked.
        raise TransportOptionError(
            f"not a SQLAlchemy database URL after linkmq+: expected {LINKMQ_URL_FORMS}"
        ) from None
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


def check_positive_seconds(name: str, value: object) -> None:
    """Raise ``TransportOptionError`` unless ``value`` (option ``name``) is a positive, finite
    number of seconds: not a bool, not NaN (every comparison with NaN is false, so it slipped
    through ``<= 0`` and reached the database as NULL), not infinity."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise TransportOptionError(
            f"{name} must be a positive, finite number of seconds, not {value!r}"
        )


def check_sqlite_options(busy_timeout_s: float, synchronous: str) -> None:
    """Raise ``TransportOptionError`` unless ``busy_timeout_s`` is a positive, finite number of
    seconds and ``synchronous`` one of SQLite's levels (OFF, NORMAL, FULL, EXTRA; any case)."""
    check_positive_seconds("busy_timeout_s", busy_timeout_s)
    if not isinstance(synchronous, str) or synchronous.upper() not in _SYNCHRONOUS_LEVELS:
        raise TransportOptionError(
            f"sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}"
        )


def engine_key(url: str, options: EngineOptions) -> str:
    """What makes two engines the same: ``url`` and the options that configure the engine."""
    return (
        f"{url}|{options.sqlite_synchronous}|{options.busy_timeout_s}|"
        f"{sorted(options.engine_options.items())!r}"
    )


def create_engine(url: str, options: EngineOptions) -> sa.Engine:
    """A new engine for ``url`` (a SQLAlchemy URL, as after ``linkmq+``), configured per dialect:
    SQLite with WAL, the busy timeout and ``BEGIN IMMEDIATE``; PostgreSQL/psycopg with an
    ``application_name``; MySQL/MariaDB at READ COMMITTED. Use
    ``database.engine_for`` for the process's shared one. Raises ``DriverMissingError`` or
    ``TransportOptionError`` (see ``require_driver``, ``database_url``)."""
    parsed = database_url(url)
    return _translating_driver_errors(parsed, lambda: _create_configured_engine(parsed, options))


def sqlite_engine(
    url: str | URL,
    *,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    synchronous: str = DEFAULT_SQLITE_SYNCHRONOUS,
    **engine_options: Any,
) -> sa.Engine:
    """An application engine for a SQLite file that a ``linkmq+`` worker shares: every
    transaction begins ``BEGIN IMMEDIATE`` (see ``configure_sqlite_engine``). ``url`` is a
    SQLAlchemy URL (``sqlite:///app.db``); ``engine_options`` go to ``sa.create_engine``.

    Raises ``TransportOptionError`` for a URL that is not a SQLite file."""
    parsed = database_url(url if isinstance(url, str) else url.render_as_string(False))
    if parsed.get_backend_name() != "sqlite":
        raise TransportOptionError(
            f"sqlite_engine() is for SQLite files, not {masked(parsed)}: "
            "create other databases' engines with sqlalchemy.create_engine"
        )
    engine = _translating_driver_errors(parsed, lambda: sa.create_engine(parsed, **engine_options))
    configure_sqlite_engine(engine, busy_timeout_s=busy_timeout_s, synchronous=synchronous)
    return engine


def configure_sqlite_engine(
    engine: sa.Engine,
    *,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    synchronous: str = DEFAULT_SQLITE_SYNCHRONOUS,
) -> sa.Engine:
    """Set up ``engine`` (SQLite) as the transport sets up its own, before its first connection:
    WAL, ``busy_timeout_s`` of waiting for the write lock, ``synchronous``, and transactions
    that begin ``BEGIN IMMEDIATE``. Returns ``engine``; configuring it twice changes nothing.

    Why: ``publish_on()`` writes into the caller's transaction. One that began DEFERRED (a plain
    ``BEGIN``, as in SQLAlchemy's pysqlite recipe) and has read since a worker wrote is refused
    the write lock at once, whatever the busy timeout (SQLite would otherwise have to break
    its snapshot). One that began IMMEDIATE holds the lock from its start and waits for it, up
    to ``busy_timeout_s``, at ``BEGIN``. Use this instead of that recipe's listeners, not
    beside them. Read-only work can begin DEFERRED, never waiting for a writer:
    ``engine.execution_options(linkmq_read_only=True)``.

    Raises ``TransportOptionError`` for another database or an invalid setting."""
    if engine.dialect.name != "sqlite":
        raise TransportOptionError(
            f"configure_sqlite_engine() is for SQLite engines, not {masked(engine.url)}"
        )
    check_sqlite_options(busy_timeout_s, synchronous)
    _configure_sqlite(engine, busy_timeout_s, synchronous)
    return engine


def require_driver(url: str) -> None:
    """Check that the driver of ``url`` (a SQLAlchemy URL, as after ``linkmq+``) can be imported,
    without connecting. Raises ``DriverMissingError`` saying what to install, or
    ``TransportOptionError`` for a database SQLAlchemy does not know."""
    parsed = database_url(url)
    _translating_driver_errors(parsed, lambda: parsed.get_dialect().import_dbapi())


def _translating_driver_errors(url: URL, create: Callable[[], _T]) -> _T:
    """``create()``, with a missing driver or an unknown dialect explained: what to install."""
    try:
        return create()
    except ImportError as exc:
        raise DriverMissingError(_driver_missing_message(url, exc)) from exc
    except sa.exc.NoSuchModuleError as exc:
        raise TransportOptionError(
            f"SQLAlchemy knows no database {url.drivername!r} ({masked(url)}); "
            f"link-message-queue runs on {_SUPPORTED}"
        ) from exc


def _driver_missing_message(url: URL, exc: ImportError) -> str:
    backend, driver = url.get_backend_name(), url.get_driver_name()
    missing = f"the database driver {driver!r} for {masked(url)} is not installed ({exc})"
    known = DRIVER_EXTRAS.get(backend)
    if known is None:
        return f"{missing}; link-message-queue runs on {_SUPPORTED}"
    supported_driver, extra = known
    install = f"pip install 'link-message-queue[{extra}]'"
    if driver == supported_driver:
        return f"{missing}: {install}"
    return f"{missing}: install it, or {install} and use {backend}+{supported_driver}://… instead"


def _create_configured_engine(url: URL, options: EngineOptions) -> sa.Engine:
    engine_options: dict[str, Any] = dict(options.engine_options)
    backend = url.get_backend_name()
    if backend == "sqlite":
        connect_args = dict(engine_options.pop("connect_args", {}))
        connect_args.setdefault("timeout", options.busy_timeout_s)
        connect_args.setdefault("check_same_thread", False)
        engine = sa.create_engine(url, connect_args=connect_args, **engine_options)
        _configure_sqlite(engine, options.busy_timeout_s, options.sqlite_synchronous)
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


def _configure_sqlite(engine: sa.Engine, busy_timeout_s: float, synchronous: str) -> None:
    with _sqlite_configured_lock:
        if engine in _sqlite_configured:
            return
        _sqlite_configured.add(engine)
    synchronous = synchronous.upper()
    busy_timeout_ms = int(busy_timeout_s * 1000)

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
