"""Schema management: ``upgrade`` (``link-mq db upgrade``, Alembic over ``migrations/``, every
table under one prefix) and ``ensure_schema``, the check made when a transport connects."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from .engines import masked, read_only
from .errors import SchemaMissingError
from .schema import SCHEMA_REVISION

logger = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).with_name("migrations")
# An arbitrary constant: concurrent upgrades on PostgreSQL queue on this advisory lock.
_PG_MIGRATION_LOCK = 0x6C696E6B6D71


_alembic_logger = logging.getLogger("alembic")
_quiet_lock = threading.Lock()
_quiet_depth = 0


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Alembic's INFO lines ("Context impl …", "setup plugin …") left out of the log while it
    works for us, so a worker or Flower starting up does not print them; our own log says what
    changed. An application that set the ``alembic`` logger's level itself keeps it."""
    global _quiet_depth  # noqa: PLW0603 - one level per process, restored by the last user
    with _quiet_lock:
        if _quiet_depth == 0 and _alembic_logger.level == logging.NOTSET:
            _alembic_logger.setLevel(logging.WARNING)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _alembic_logger.level == logging.WARNING:
                _alembic_logger.setLevel(logging.NOTSET)


def version_table(prefix: str) -> str:
    """The name of Alembic's version table for the tables with ``prefix``:
    ``{prefix}alembic_version``."""
    return f"{prefix}alembic_version"


def current_revision(connection: sa.Connection, prefix: str) -> str | None:
    """The Alembic revision the schema with ``prefix`` is at on ``connection``, or None if it was
    never migrated. Database errors propagate (``sqlalchemy.exc.SQLAlchemyError``)."""
    with _quiet_alembic():
        # Imported here, quietly: importing alembic logs a line per plugin it sets up.
        from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

        context = MigrationContext.configure(
            connection, opts={"version_table": version_table(prefix)}
        )
        return context.get_current_revision()


def upgrade(engine: sa.Engine, prefix: str) -> str:
    """Bring the tables under ``prefix`` to the newest revision (``schema.SCHEMA_REVISION``) in
    one transaction; safe to run concurrently (PostgreSQL: an advisory lock; SQLite: the write
    lock) and repeatedly. Returns the revision the schema is at, e.g. ``"0006"``. Database
    errors propagate (``sqlalchemy.exc.SQLAlchemyError``) and roll the whole upgrade back."""
    with engine.begin() as connection:
        return _upgrade_in(connection, prefix)


def _upgrade_in(connection: sa.Connection, prefix: str) -> str:
    """``upgrade`` in ``connection``'s transaction (committed or rolled back by its owner)."""
    with _quiet_alembic():
        from alembic import command  # noqa: PLC0415 - see current_revision
        from alembic.config import Config  # noqa: PLC0415

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["table_prefix"] = prefix
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
    # On SQLite the transport's engine begins with BEGIN IMMEDIATE: the write lock
    # serialises concurrent upgrades the same way.
    before = current_revision(connection, prefix)
    config.attributes["connection"] = connection
    with _quiet_alembic():
        command.upgrade(config, "head")
    after = current_revision(connection, prefix)
    if before != after:
        logger.info(
            "schema upgraded from %s to %s on %s",
            before,
            after,
            masked(connection.engine.url),
            extra={"action": "migrate"},
        )
    return after or ""


def ensure_schema(engine: sa.Engine, prefix: str, auto_migrate: bool | None = None) -> None:
    """Check the schema under ``prefix`` is at ``SCHEMA_REVISION`` (one read-only query);
    upgrade it when ``auto_migrate`` (default: on SQLite files, the embedded default), else
    raise ``SchemaMissingError`` saying what to run."""
    with read_only(engine).connect() as connection:
        revision = current_revision(connection, prefix)
    if revision == SCHEMA_REVISION:
        return
    if auto_migrate is None:
        auto_migrate = engine.dialect.name == "sqlite"
    if auto_migrate:
        upgrade(engine, prefix)
        return
    raise _schema_missing(engine.url, prefix, revision)


def _schema_missing(url: sa.URL, prefix: str, revision: str | None) -> SchemaMissingError:
    found = "no queue tables" if revision is None else f"schema revision {revision}"
    return SchemaMissingError(
        f"{masked(url)} has {found} under prefix {prefix!r}, "
        f"this version needs {SCHEMA_REVISION}: run `link-mq db upgrade`"
    )


def ensure_schema_in(
    connection: sa.Connection, prefix: str, auto_migrate: bool | None = None
) -> bool:
    """``ensure_schema`` inside ``connection``'s transaction, for a write the caller's
    transaction makes (on SQLite it holds the write lock from its start, so another connection
    could not migrate before it ends). True when the schema was at ``SCHEMA_REVISION`` already;
    False when it was upgraded here (the tables exist only if the caller commits). Raises
    ``SchemaMissingError`` as ``ensure_schema`` does."""
    revision = current_revision(connection, prefix)
    if revision == SCHEMA_REVISION:
        return True
    if auto_migrate is None:
        auto_migrate = connection.dialect.name == "sqlite"
    if auto_migrate:
        _upgrade_in(connection, prefix)
        return False
    raise _schema_missing(connection.engine.url, prefix, revision)
