"""link-message-queue: prooph LINK workflow messages as Celery tasks on a queue in the
application's own database.

Importing the package registers the kombu transport alias ``linkmq`` (``linkmq+<SQLAlchemy
URL>``); the transport module itself is imported only when a connection uses it. Inside a
Flower process it also gives Flower's broker view a client for ``linkmq+`` URLs.
"""

import sys

from kombu.transport import TRANSPORT_ALIASES

__version__ = "0.1.0"

TRANSPORT_ALIASES.setdefault("linkmq", "link_message_queue.transport:Transport")

if "flower.utils.broker" in sys.modules:
    # Inside `celery … flower` (Flower is loaded before the app): teach its broker page the
    # linkmq+ scheme. Nothing happens in any other process.
    from .flower_broker import install as _install_flower_broker

    _install_flower_broker()
