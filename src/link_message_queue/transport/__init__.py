"""``linkmq+``: a durable kombu transport over SQLAlchemy, in the application's own database.

See :mod:`link_message_queue.transport.transport` for features, URL and options.
"""

from .engines import configure_sqlite_engine, sqlite_engine
from .errors import (
    DeferredTransactionError,
    DriverMissingError,
    PublishRefusedError,
    SchemaMissingError,
    TransportError,
    TransportOptionError,
)
from .migrate import upgrade
from .options import TransportOptions
from .transactional import publish_on
from .transport import Transport

__all__ = [
    "DeferredTransactionError",
    "DriverMissingError",
    "PublishRefusedError",
    "SchemaMissingError",
    "Transport",
    "TransportError",
    "TransportOptionError",
    "TransportOptions",
    "configure_sqlite_engine",
    "publish_on",
    "sqlite_engine",
    "upgrade",
]
