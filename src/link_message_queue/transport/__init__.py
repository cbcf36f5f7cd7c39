"""``linkmq+``: a durable kombu transport over SQLAlchemy, in the application's own database.

See :mod:`link_message_queue.transport.transport` for features, URL and options.
"""

from .errors import PublishRefusedError, SchemaMissingError, TransportError, TransportOptionError
from .migrate import upgrade
from .options import TransportOptions
from .transactional import publish_on
from .transport import Transport

__all__ = [
    "PublishRefusedError",
    "SchemaMissingError",
    "Transport",
    "TransportError",
    "TransportOptionError",
    "TransportOptions",
    "publish_on",
    "upgrade",
]
