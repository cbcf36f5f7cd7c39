"""link-message-queue: prooph LINK workflow messages as Celery tasks on a queue in the
application's own database.

The names an application needs are importable from here::

    from link_message_queue import DispatchContext, WorkflowMessage, producer, publish_on, send_many

Importing the package registers the kombu transport alias ``linkmq`` (``linkmq+<SQLAlchemy
URL>``) and nothing else: the transport, the Celery app and the runtime are imported when first
used. Inside a Flower process it also gives Flower's broker view a client for ``linkmq+`` URLs.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from kombu.transport import TRANSPORT_ALIASES

if TYPE_CHECKING:
    from .bridge.producer import Producer
    from .bulk import send_many
    from .db import configure_sqlite_engine, sqlite_engine
    from .engine import DispatchContext
    from .messages import Payload, WorkflowMessage
    from .processor.handlers import WorkflowMessageHandler
    from .settings import Settings
    from .transport import publish_on

# The one source of the version: pyproject.toml reads it from here (hatch's dynamic version),
# so the package, the CLI and the installed metadata agree without reading metadata at import.
__version__ = "0.1.0"

__all__ = [
    "DispatchContext",
    "Payload",
    "Settings",
    "WorkflowMessage",
    "WorkflowMessageHandler",
    "__version__",
    "configure_sqlite_engine",
    "producer",
    "publish_on",
    "send_many",
    "sqlite_engine",
]

# Public names imported on first access (PEP 562), so that `import link_message_queue` stays
# as cheap as registering the transport alias. name -> module it lives in.
_LAZY = {
    "DispatchContext": ".engine",
    "Payload": ".messages",
    "Settings": ".settings",
    "WorkflowMessage": ".messages",
    "WorkflowMessageHandler": ".processor.handlers",
    "configure_sqlite_engine": ".db",
    "publish_on": ".transport",
    "send_many": ".bulk",
    "sqlite_engine": ".db",
}


def producer() -> Producer:
    """This process's producer (``link.message_queue.producer``), built on first use from the
    ``LINK_MQ_*`` environment and the ``LINK_MQ_CONFIG`` module.

    ``producer().dispatch(message)`` queues a workflow message as a Celery task;
    ``producer().dispatch(message, connection=connection)`` queues it inside that SQLAlchemy
    connection's transaction (visible when it commits, gone if it rolls back).

    Raises ``SettingsError`` for an invalid ``LINK_MQ_*`` value and ``BridgeError`` when the
    config module cannot be imported or is malformed.
    """
    from .celery_app import runtime  # noqa: PLC0415 - the Celery app only when it is used

    return runtime().producer


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module  # noqa: PLC0415 - only for a lazy name

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # the next access skips this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


TRANSPORT_ALIASES.setdefault("linkmq", "link_message_queue.transport:Transport")

if "flower.utils.broker" in sys.modules:
    # Inside `celery … flower` (Flower is loaded before the app): teach its broker page the
    # linkmq+ scheme. Nothing happens in any other process.
    from .monitoring.flower_broker import install as _install_flower_broker

    _install_flower_broker()
