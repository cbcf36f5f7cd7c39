"""``linkmq+``: a durable kombu transport over SQLAlchemy, in the application's own database.

See :mod:`link_message_queue.transport.transport` for features and URL, and
:mod:`link_message_queue.transport.options` for every option.

This package's ``__all__`` is its boundary: the rest of ``link_message_queue`` imports the
transport only from here, never from its modules (``tests/unit/test_transport_boundary.py``).
The database below it (engines, tables, clock, migrations) is :mod:`link_message_queue.db`; the
few of its names a kombu user needs (the SQLite engine set-up, ``upgrade``, the errors) are
re-exported here, and code in ``link_message_queue`` imports them from ``db``.
"""

from ..db import configure_sqlite_engine, ensure_schema, sqlite_engine, upgrade
from . import states
from .delivery import Deliveries, Delivery
from .errors import (
    DeferredTransactionError,
    DriverMissingError,
    EnvelopeError,
    LeaseLostError,
    NameTooLongError,
    PublishRefusedError,
    SchemaMissingError,
    TransportError,
    TransportOptionError,
)
from .leases import TOUCH_INTERVAL_S, LeaseKeeper
from .options import DEFAULT_MAX_MESSAGE_BYTES, TransportOptions
from .rows import ClaimedRow
from .store import MessageStore
from .transactional import publish_all_or_none, publish_on, writing_in
from .transport import Transport

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
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
    "NameTooLongError",
    "PublishRefusedError",
    "SchemaMissingError",
    "Transport",
    "TransportError",
    "TransportOptionError",
    "TransportOptions",
    "configure_sqlite_engine",
    "ensure_schema",
    "publish_all_or_none",
    "publish_on",
    "sqlite_engine",
    "states",
    "upgrade",
    "writing_in",
]
