"""``linkmq+``: a durable kombu transport over SQLAlchemy, in the application's own database.

See :mod:`link_message_queue.transport.transport` for features and URL, and
:mod:`link_message_queue.transport.options` for every option.

This package's ``__all__`` is its boundary: the rest of ``link_message_queue`` imports the
transport only from here, never from its modules (``tests/unit/test_transport_boundary.py``).
"""

from . import states
from .clock import database_now, read_database_now
from .delivery import Deliveries, Delivery
from .engines import (
    configure_sqlite_engine,
    engine_for,
    masked,
    read_only,
    require_driver,
    sqlite_engine,
)
from .errors import (
    DeferredTransactionError,
    DriverMissingError,
    EnvelopeError,
    LeaseLostError,
    PublishRefusedError,
    SchemaMissingError,
    TransportError,
    TransportOptionError,
)
from .leases import TOUCH_INTERVAL_S, LeaseKeeper
from .migrate import ensure_schema, upgrade
from .options import DEFAULT_MAX_MESSAGE_BYTES, TransportOptions
from .rows import ClaimedRow
from .schema import SECONDS, QueueTables, queue_tables
from .store import MessageStore
from .transactional import publish_on, writing_in
from .transport import Transport

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "SECONDS",
    "TOUCH_INTERVAL_S",
    "ClaimedRow",
    "DeferredTransactionError",
    "Deliveries",
    "Delivery",
    "DriverMissingError",
    "EnvelopeError",
    "LeaseKeeper",
    "LeaseLostError",
    "MessageStore",
    "PublishRefusedError",
    "QueueTables",
    "SchemaMissingError",
    "Transport",
    "TransportError",
    "TransportOptionError",
    "TransportOptions",
    "configure_sqlite_engine",
    "database_now",
    "engine_for",
    "ensure_schema",
    "masked",
    "publish_on",
    "queue_tables",
    "read_database_now",
    "read_only",
    "require_driver",
    "sqlite_engine",
    "states",
    "upgrade",
    "writing_in",
]
