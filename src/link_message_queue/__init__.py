"""link-message-queue: prooph LINK workflow messages as Celery tasks on a queue in the
application's own database.

Importing the package registers the kombu transport alias ``linkmq`` (``linkmq+<SQLAlchemy
URL>``); the transport module itself is imported only when a connection uses it.
"""

from kombu.transport import TRANSPORT_ALIASES

__version__ = "0.1.0"

TRANSPORT_ALIASES.setdefault("linkmq", "link_message_queue.transport:Transport")
