"""The process's connection for publishes outside a caller's transaction: checked out of the
pool by the first publish, in autocommit, one statement a message (server-side prepared on
PostgreSQL); and the registry that shares such held connections (``hold_shared``).

On PostgreSQL (psycopg) the prepared statement runs through libpq itself (``PQexecPrepared``
on psycopg's ``pgconn``, text parameters): psycopg's cursor spent more of the publisher's CPU
on each message (its query and parameter machinery, its non-blocking wait loop in Python)
than the call itself (measured: 0.09 against 0.04 ms a message). libpq's call releases the GIL
while it waits; a Ctrl-C during it is raised when the statement has returned.

Why: through SQLAlchemy, each publish paid a pool checkout and check-in, a transaction
bracket (empty in autocommit, yet Python work), a compiled-statement lookup and a result
object; the statement itself (one INSERT, and its NOTIFY on PostgreSQL) is a fraction of that.
Publishing runs in the caller's process, under its GIL, once per task.

One per process, engine and message table, shared by every store that holds connections (each
kombu connection's): one held each ran the engine's pool dry with a few kombu connections in a
process (Flower's threads, a web app's producer pool) and their callers hung. One thread at a
time uses it; a publish that finds it busy gets ``False`` and goes the SQLAlchemy way. It goes
back to the pool (autocommit switched off again by SQLAlchemy where it switched it on) when the
last store sharing it closes. A lost connection is discarded (the next publish checks out
another); errors come out as SQLAlchemy's, so kombu retries a lost connection as a connection
error. A forked child never touches the connection it inherited: it neither closes it nor
returns it to the pool, since either would talk on its parent's socket, and starts with no
shared connections of its own.

Run-time settings of the held session (``settings``: ``synchronous_commit`` for the transport
option ``publish_synchronous_commit``) are set when it is checked out and their previous values
restored before it goes back to the pool: the pool's connections are the application's too.
"""

from __future__ import annotations

import hashlib
import re
import threading
import weakref
from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from ..db import after_fork_in_child
from .rows import PendingRow

# A message's statement for the driver's cursor: (SQL, parameters).
Statement = Callable[[PendingRow], tuple[str, Any]]

# psycopg's named placeholders, which the libpq path turns into $1, $2, …
_NAMED_PARAMETER = re.compile(r"%\((\w+)\)s")
# SQLSTATE of PREPARE for a name the session has already: the same SQL (the name is its hash),
# prepared by an earlier holder of this pooled connection.
_DUPLICATE_PREPARED_STATEMENT = "42P05"


class PutConnection:
    """Runs ``statement(row)`` once per message on a connection held from ``engine``, whose
    connections must be in autocommit (each message commits alone), one thread at a time.
    ``prepare``: the driver is psycopg 3 and ``statement`` gives SQL with ``%(name)s``
    placeholders and a dict: the SQL is prepared on the server once per connection and run
    through libpq. ``settings``: PostgreSQL run-time settings (name -> value, e.g.
    ``synchronous_commit``) set for the connection's session when it is checked out (its
    statements are their own transactions, so they keep it); the values it had are restored
    before it goes back to the pool, so the pool's next user never sees them."""

    def __init__(
        self,
        engine: sa.Engine,
        statement: Statement,
        *,
        prepare: bool,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self._engine = engine
        self._statement = statement
        self._prepare = prepare
        self._settings = dict(settings or {})
        # The held session's values of ``settings`` before they were set: restored on close.
        self._previous: dict[str, str] = {}
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._held: sa.Connection | None = None
        self._cursor: Any = None
        # libpq path, on the held connection: SQL -> (statement name, parameter names in $n
        # order, the connection's client encoding).
        self._prepared: dict[str, tuple[bytes, list[str], str]] = {}
        # Held by the thread running a statement: the connection is shared by the process.
        # Re-entrant, with ``_running``: a signal handler on that thread (celery beat's SIGTERM
        # handler closes its broker connection) must not wait for the statement it interrupted.
        self._lock = threading.RLock()
        self._running = False
        _open.add(self)

    def put(self, row: PendingRow) -> bool:
        """Insert ``row`` (and signal its queue on PostgreSQL), committed on return: True; False
        (nothing written) when another thread is using the connection. Raises SQLAlchemy's
        ``DBAPIError`` subclasses (``OperationalError`` for a lost connection)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._running:  # a signal handler interrupting this thread's own statement
                return False
            self._running = True
            try:
                cursor = self._cursor if self._held is not None else self._open()
                sql, parameters = self._statement(row)
                try:
                    if self._prepare:
                        self._execute_prepared(cursor.connection, sql, parameters)
                    else:
                        cursor.execute(sql, parameters)
                except self._dbapi_error as exc:
                    raise self._failed(cursor, sql, parameters, exc) from exc
                except BaseException:
                    # Interrupted mid-statement: the connection's state is unknown.
                    self._discard()
                    raise
                return True
            finally:
                self._running = False
        finally:
            self._lock.release()

    def select(self, sql: str, parameters: Any) -> list[tuple[str | None, ...]] | None:
        """The rows of the read ``sql`` on the held connection (placeholders and ``parameters``
        as ``statement``'s: ``%(name)s`` and a dict when prepared), each value as text (None
        for NULL), read at once: it sees everything committed before it. None (nothing read)
        when another thread is using the connection. Raises as ``put``."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._running:  # a signal handler interrupting this thread's own statement
                return None
            self._running = True
            try:
                return self._select(sql, parameters)
            finally:
                self._running = False
        finally:
            self._lock.release()

    def _select(self, sql: str, parameters: Any) -> list[tuple[str | None, ...]]:
        cursor = self._cursor if self._held is not None else self._open()
        try:
            if not self._prepare:
                cursor.execute(sql, parameters)
                return [tuple(row) for row in cursor.fetchall()]
            result = self._execute_prepared(cursor.connection, sql, parameters)
            encoding = self._prepared[sql][2]
            value = result.get_value
            return [
                tuple(
                    None if (text := value(row, column)) is None else text.decode(encoding)
                    for column in range(result.nfields)
                )
                for row in range(result.ntuples)
            ]
        except self._dbapi_error as exc:
            raise self._failed(cursor, sql, parameters, exc) from exc
        except BaseException:
            # Interrupted mid-statement: the connection's state is unknown.
            self._discard()
            raise

    def _failed(
        self, cursor: Any, sql: str, parameters: Any, exc: Exception
    ) -> sa.exc.StatementError:
        """The driver's error ``exc`` from ``sql`` as SQLAlchemy's; a lost connection is
        discarded first (the next statement checks out another)."""
        lost = _is_lost(cursor.connection)
        if lost:
            self._discard()
            # Whatever class the driver gave it (psycopg raises its generic DatabaseError for a
            # connection reset without a server message): a lost connection is an
            # OperationalError, the error kombu reconnects and retries on.
            return sa.exc.OperationalError(sql, parameters, exc, connection_invalidated=True)
        return sa.exc.DBAPIError.instance(
            sql,
            parameters,
            exc,
            self._dbapi_error,
            dialect=self._engine.dialect,
            connection_invalidated=lost,
        )

    def _execute_prepared(self, driver: Any, sql: str, parameters: dict[str, Any]) -> Any:
        """``sql`` with ``parameters`` as a prepared statement through libpq, in text format
        (the server infers each parameter's type from the statement); returns libpq's result
        (``psycopg.pq`` ``PGresult``, values as text). Raises psycopg's errors."""
        prepared = self._prepared.get(sql)
        if prepared is None:
            prepared = self._prepared[sql] = _prepare(driver, sql)
        name, names, encoding = prepared
        values = [
            None if parameters[key] is None else str(parameters[key]).encode(encoding)
            for key in names
        ]
        pgconn = driver.pgconn
        result = pgconn.exec_prepared(name, values)
        if result.status not in _SUCCEEDED:
            raise _libpq_error(pgconn, result, encoding)
        return result

    def close(self) -> None:
        """Give the connection back to the pool (with its autocommit reset and ``settings``
        restored; waits for a statement running in another thread, not for one of this thread
        that a signal handler calling this interrupted); the next statement checks one out
        again. Raises SQLAlchemy's ``DBAPIError`` when restoring the settings fails: the
        connection is then discarded, never returned with them."""
        with self._lock:
            if self._running:
                # A signal handler closing it in the middle of this thread's own statement:
                # waiting would never end (celery beat then hung on SIGTERM until SIGKILLed).
                # Left to the statement, which discards the connection if the handler raises.
                return
            held, self._held, cursor, self._cursor = self._held, None, self._cursor, None
            previous, self._previous = self._previous, {}
            self._prepared = {}
            if held is None:
                return
            if _is_lost(cursor.connection):
                # Its session, settings and all, is gone with it: nothing to restore.
                held.invalidate()
                held.close()
                return
            try:
                self._set(cursor, previous)
            except BaseException:
                held.invalidate()
                raise
            finally:
                held.close()

    def _open(self) -> Any:
        held = self._engine.connect()
        try:
            cursor = held.connection.driver_connection.cursor()  # type: ignore[union-attr]
            previous = self._get(cursor, self._settings)
            self._set(cursor, self._settings)
        except BaseException:
            if self._settings:
                held.invalidate()  # some settings may be set: never back into the pool
            held.close()
            raise
        self._held, self._cursor, self._previous = held, cursor, previous
        return cursor

    def _get(self, cursor: Any, names: Mapping[str, str]) -> dict[str, str]:
        """The session's current value of each setting in ``names``. Raises SQLAlchemy's
        ``DBAPIError``."""
        values = {}
        for name in names:
            sql = "SELECT current_setting(%s)"
            try:
                cursor.execute(sql, (name,))
                values[name] = str(cursor.fetchone()[0])
            except self._dbapi_error as exc:
                raise self._as_sqlalchemy(sql, name, exc) from exc
        return values

    def _set(self, cursor: Any, settings: Mapping[str, str]) -> None:
        """Set each of ``settings`` for the session (``set_config``, not local: in autocommit
        each statement is its own transaction). Raises SQLAlchemy's ``DBAPIError``."""
        for name, value in settings.items():
            sql = "SELECT set_config(%s, %s, false)"
            try:
                cursor.execute(sql, (name, value))
            except self._dbapi_error as exc:
                raise self._as_sqlalchemy(sql, (name, value), exc) from exc

    def _as_sqlalchemy(self, sql: str, parameters: Any, exc: Exception) -> sa.exc.StatementError:
        return sa.exc.DBAPIError.instance(
            sql, parameters, exc, self._dbapi_error, dialect=self._engine.dialect
        )

    def _discard(self) -> None:
        held, self._held, self._cursor = self._held, None, None
        self._prepared, self._previous = {}, {}
        if held is not None:
            held.invalidate()
            held.close()

    def _abandon_in_child(self) -> None:
        # A statement in another thread of the parent may have held the lock at the fork.
        self._lock = threading.RLock()
        self._running = False
        held, self._held, self._cursor = self._held, None, None
        self._prepared, self._previous = {}, {}
        if held is not None:
            # Kept referenced for good: neither closed nor garbage-collected back into the pool.
            _inherited.append(held)


def _prepare(driver: Any, sql: str) -> tuple[bytes, list[str], str]:
    """PREPARE ``sql`` (``%(name)s`` placeholders) on psycopg connection ``driver`` under a
    name derived from its text; returns that name, the parameter names in ``$n`` order and
    the connection's client encoding (Python's name for it)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    text = _NAMED_PARAMETER.sub(number, sql)
    name = f"linkmq_{hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]}"
    encoding = driver.info.encoding
    result = driver.pgconn.prepare(name.encode(), text.encode(encoding))
    if result.status not in _SUCCEEDED:
        error = _libpq_error(driver.pgconn, result, encoding)
        if getattr(error, "sqlstate", None) != _DUPLICATE_PREPARED_STATEMENT:
            raise error
    return name.encode(), names, encoding


def _is_lost(driver: Any) -> bool:
    """Whether the DB-API connection ``driver`` (psycopg or sqlite3) is closed or broken."""
    if getattr(driver, "closed", False) or getattr(driver, "broken", False):
        return True
    pgconn = getattr(driver, "pgconn", None)
    return pgconn is not None and pgconn.status != _CONNECTION_OK


def _libpq_error(pgconn: Any, result: Any, encoding: str) -> Exception:
    """psycopg's error for the failed libpq ``result`` on ``pgconn``: OperationalError when the
    connection is lost (as psycopg itself reports it; kombu retries it), else the error for
    the result's SQLSTATE."""
    errors = _psycopg_errors()
    if pgconn.status != _CONNECTION_OK:
        message = result.error_message or pgconn.error_message
        return cast(Exception, errors.OperationalError(message.decode(encoding, "replace").strip()))
    return cast(Exception, errors.error_from_result(result, encoding=encoding))


def _psycopg_errors() -> Any:
    import psycopg.errors  # noqa: PLC0415 - psycopg is only there when the URL asks for it

    return psycopg.errors


# libpq's status values (psycopg.pq), fixed by libpq's ABI: a statement that succeeded returned
# rows or none (PGRES_TUPLES_OK 2, PGRES_COMMAND_OK 1); a usable connection (CONNECTION_OK 0).
_SUCCEEDED = frozenset({1, 2})
_CONNECTION_OK = 0

_open: weakref.WeakSet[PutConnection] = weakref.WeakSet()
_inherited: list[sa.Connection] = []

_Held = TypeVar("_Held", bound=PutConnection)

# This process's shared held connections: key -> (connection, how many users hold it).
_shared: dict[Hashable, tuple[PutConnection, int]] = {}
_shared_lock = threading.Lock()


def hold_shared(key: Hashable, make: Callable[[], _Held]) -> _Held:
    """This process's held connection under ``key`` (``make()`` on first use), with one more
    user: each call is paired with one ``let_go_shared(key, connection)``. Connects to
    nothing (the connection's first statement checks one out)."""
    with _shared_lock:
        entry = _shared.get(key)
        connection = make() if entry is None else entry[0]
        _shared[key] = (connection, 1 if entry is None else entry[1] + 1)
        return cast(_Held, connection)  # the entry was made by ``make`` for this key


def let_go_shared(key: Hashable, connection: PutConnection) -> None:
    """One user of ``connection`` (from ``hold_shared(key, …)``) fewer: the last gives it back
    to the pool and forgets it (the next ``hold_shared`` makes another). A connection that is
    not ``key``'s (a parent's, in a forked child) is left alone."""
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None or entry[0] is not connection:
            return
        if entry[1] > 1:
            _shared[key] = (connection, entry[1] - 1)
            return
        del _shared[key]
    connection.close()  # outside the registry's lock: it waits for a running statement


def _abandon_in_child() -> None:
    global _shared_lock  # noqa: PLW0603 - a parent's thread may have held it at the fork
    _shared_lock = threading.Lock()
    _shared.clear()  # the parent's users are not this process's
    for put_connection in list(_open):
        put_connection._abandon_in_child()


after_fork_in_child(_abandon_in_child)
