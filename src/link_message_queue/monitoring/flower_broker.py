"""Flower's broker view for linkmq+: queue lengths read from the database.

Flower knows RabbitMQ and Redis only and picks a broker client by URL scheme; for
``linkmq+…`` URLs this plugs in a client of ours. Installed by ``celery_app`` when Flower is
importable; everything else in Flower (workers, tasks, events) needs nothing special."""

from __future__ import annotations

import importlib.util
from typing import Any

from ..db import database_for
from ..settings import Settings
from ..transport import MessageStore, TransportOptions

# Celery's own short-lived queues are left out of the listing.
_INTERNAL_SUFFIXES = (".pidbox",)
_INTERNAL_PREFIXES = ("celeryev.", "celery@")


def _is_internal(name: str) -> bool:
    return (
        name.startswith(_INTERNAL_PREFIXES) or name.endswith(_INTERNAL_SUFFIXES) or "-reply" in name
    )


class LinkMqFlowerBroker:
    """What Flower's ``Broker`` factory returns for a ``linkmq+`` URL."""

    def __init__(
        self, broker_url: str, *_: Any, broker_options: dict[str, Any] | None = None, **__: Any
    ) -> None:
        options = TransportOptions.from_transport_options(broker_options or {})
        database_url = broker_url.split("+", 1)[1]
        self.workflow_queue = Settings.from_env().queue
        database = database_for(database_url, options)
        self.store = MessageStore(database.engine, database.tables)

    async def queues(self, names: list[str]) -> list[dict[str, Any]]:
        """Ready messages per queue: the ones Flower asks for plus every application queue and
        the workflow queue (drained by ticks, so no worker lists it as active; listed even
        before anything was published to it)."""
        known = {name for name in self.store.queues.queue_names() if not _is_internal(name)}
        known.add(self.workflow_queue)
        return [
            {"name": name, "messages": self.store.messages.size(name)}
            for name in sorted(set(names) | known)
        ]


def install() -> bool:
    """Teach Flower's broker factory the ``linkmq+`` scheme; False when Flower is absent."""
    if importlib.util.find_spec("flower") is None:
        return False
    from flower.utils import broker  # noqa: PLC0415 - only inside a Flower process

    factory = broker.Broker
    if getattr(factory, "_linkmq_installed", False):
        return True
    original_new = factory.__new__

    def new(cls: type, broker_url: str, *args: Any, **kwargs: Any) -> Any:
        if broker_url.startswith("linkmq+"):
            return LinkMqFlowerBroker(broker_url, *args, **kwargs)
        return original_new(cls, broker_url, *args, **kwargs)

    factory.__new__ = new
    factory._linkmq_installed = True
    return True
