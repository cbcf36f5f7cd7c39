"""The application database, below the transport, the processor and the bridge (it imports
none of them): engines and the one ``Database`` per process (``database``, fork-safe there),
the tables (``schema``), the database's clock (``clock``), the Alembic ``migrations`` and
``link-mq db upgrade`` (``migrate``), and the errors they raise (``errors``).

Code elsewhere in ``link_message_queue`` imports these names from here."""

from .clock import database_now, read_database_now
from .database import Database, DatabaseOptions, after_fork_in_child, database_for, engine_for
from .engines import (
    DEFAULT_BUSY_TIMEOUT_S,
    DEFAULT_SQLITE_SYNCHRONOUS,
    EngineOptions,
    check_positive_seconds,
    check_sqlite_options,
    configure_sqlite_engine,
    database_url,
    masked,
    read_only,
    require_driver,
    sqlite_engine,
)
from .errors import DriverMissingError, SchemaMissingError, TransportError, TransportOptionError
from .migrate import ensure_schema, ensure_schema_in, upgrade
from .schema import (
    SCHEMA_REVISION,
    SECONDS,
    ProcessTables,
    QueueTables,
    process_tables,
    queue_tables,
)

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_S",
    "DEFAULT_SQLITE_SYNCHRONOUS",
    "SCHEMA_REVISION",
    "SECONDS",
    "Database",
    "DatabaseOptions",
    "DriverMissingError",
    "EngineOptions",
    "ProcessTables",
    "QueueTables",
    "SchemaMissingError",
    "TransportError",
    "TransportOptionError",
    "after_fork_in_child",
    "check_positive_seconds",
    "check_sqlite_options",
    "configure_sqlite_engine",
    "database_for",
    "database_now",
    "database_url",
    "engine_for",
    "ensure_schema",
    "ensure_schema_in",
    "masked",
    "process_tables",
    "queue_tables",
    "read_database_now",
    "read_only",
    "require_driver",
    "sqlite_engine",
    "upgrade",
]
