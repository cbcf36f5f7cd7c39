"""The kombu channel of the linkmq transport."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import time
from queue import Empty
from typing import TYPE_CHECKING, Any

from kombu.transport import virtual
from kombu.utils.uuid import uuid

from .errors import PublishRefusedError, TransportError
from .qos import LeaseQoS
from .store import ClaimedRow
from .transactional import bound_connection

if TYPE_CHECKING:
    import sqlalchemy as sa

    from .leases import LeaseKeeper
    from .store import MessageStore
    from .transport import Transport

logger = logging.getLogger(__name__)


class Channel(virtual.Channel):
    QoS = LeaseQoS
    supports_fanout = True
    # Text bodies are stored as text (readable rows); binary ones as base64.
    body_encoding = "utf-8"

    connection: Transport

    def __init__(self, connection: Transport, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        self.store: MessageStore = connection.store
        self.leases: LeaseKeeper = connection.leases
        self._declared: set[str] = set()
        self._queue_rotation = itertools.count()

    # -- publishing ------------------------------------------------------------------------

    def _inplace_augment_message(
        self, message: dict[str, Any], exchange: str, routing_key: str
    ) -> None:
        body = message["body"]
        text = _as_text(body) if message.get("content-encoding") == "utf-8" else None
        if text is not None:
            message["body"], body_encoding = text, "utf-8"
        else:
            raw = body.encode("utf-8") if isinstance(body, str) else body
            message["body"], body_encoding = base64.b64encode(raw).decode("ascii"), "base64"
        properties = message["properties"]
        properties.update(body_encoding=body_encoding, delivery_tag=uuid())
        properties["delivery_info"].update(exchange=exchange, routing_key=routing_key)

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        payload = json.dumps(message, separators=(",", ":"))
        limit = self.connection.options.max_message_bytes
        if len(payload) > limit:
            raise PublishRefusedError(
                f"message for queue {queue!r} is {len(payload)} bytes, over the limit of {limit} "
                "(transport option max_message_bytes)"
            )
        expiration_ms = message["properties"].get("expiration")
        expires_at = None if expiration_ms is None else time.time() + float(expiration_ms) / 1000
        connection = self._caller_connection()
        self.store.put(queue, payload, self._get_message_priority(message), expires_at, connection)
        if connection is None:
            self.connection.signal.notify()

    def _put_fanout(
        self, exchange: str, message: dict[str, Any], routing_key: str, **kwargs: Any
    ) -> None:
        for queue in {queue for _, _, queue in self.get_table(exchange)}:
            self._put(queue, message, **kwargs)

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        # Bindings live in this process's broker state (kombu's virtual table), which
        # _put_fanout reads; nothing more to store.
        return None

    def _caller_connection(self) -> sa.Connection | None:
        connection = bound_connection()
        if connection is None:
            return None
        ours, theirs = self.store.engine.url, connection.engine.url
        if (ours.get_backend_name(), ours.host, ours.port, ours.database) != (
            theirs.get_backend_name(),
            theirs.host,
            theirs.port,
            theirs.database,
        ):
            raise TransportError(
                "publish_on() got a connection to another database than the broker's: "
                "a transactional publish must use the broker's own database"
            )
        return connection

    # -- queues ----------------------------------------------------------------------------

    def _new_queue(self, queue: str, **kwargs: Any) -> None:
        connection = self._caller_connection()
        if queue in self._declared and connection is None:
            return
        self.store.declare_queue(queue, kwargs.get("arguments"), connection)
        self._declared.add(queue)

    def _has_queue(self, queue: str, **kwargs: Any) -> bool:
        return self.store.has_queue(queue, self._caller_connection())

    def _delete(self, queue: str, *args: Any, **kwargs: Any) -> None:
        self.store.delete_queue(queue)
        self._declared.discard(queue)

    def _purge(self, queue: str) -> int:
        return self.store.purge(queue)

    def _size(self, queue: str) -> int:
        # Inside publish_on(), read on the caller's connection: on SQLite it holds the write
        # lock, and a second connection would wait for it forever.
        return self.store.size(queue, self._caller_connection())

    # -- consuming -------------------------------------------------------------------------

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        rows = self._claim(queue, 1)
        if not rows:
            raise Empty()
        return self._to_message(rows[0])

    def deliver_ready(self) -> int:
        """Claim what the prefetch window allows from the first of this channel's queues that
        has messages (rotating, so no queue starves) and deliver it; how many were delivered."""
        if not self._consumers or not self._active_queues:
            return 0
        room = self.qos.can_consume_max_estimate()
        limit = (
            self.connection.options.claim_batch_max
            if room is None
            else min(room, self.connection.options.claim_batch_max)
        )
        if limit <= 0:
            return 0
        queues = list(self._active_queues)
        start = next(self._queue_rotation) % len(queues)
        for queue in queues[start:] + queues[:start]:
            rows = self._claim(queue, limit)
            if rows:
                self._deliver_all(queue, rows)
                return len(rows)
        return 0

    def _claim(self, queue: str, limit: int) -> list[ClaimedRow]:
        options = self.connection.options
        acked = self.connection.acks.take()
        try:
            rows = self.store.claim(queue, self.leases.owner, options.lease_s, limit, acked)
        except BaseException:
            self.connection.acks.give_back(acked)
            raise
        self.leases.forget(acked)
        if rows:
            self.leases.hold(row.id for row in rows)
            logger.debug(
                "claim %d from %s",
                len(rows),
                queue,
                extra={"action": "claim", "queue": queue, "count": len(rows)},
            )
        return rows

    def close(self) -> None:
        if self.connection is not None:
            self.connection.flush_acks()
        super().close()

    def _deliver_all(self, queue: str, rows: list[ClaimedRow]) -> None:
        for index, row in enumerate(rows):
            try:
                self.connection._deliver(self._to_message(row), queue)
            except BaseException:
                # Not delivered: hand the rest back now rather than after the lease.
                rest = [later.id for later in rows[index + 1 :]]
                self.store.release(rest, self.leases.owner)
                self.leases.forget(rest)
                raise

    def _to_message(self, row: ClaimedRow) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(row.payload)
        properties = message["properties"]
        properties["delivery_tag"] = f"{row.id}.{row.delivery_count}"
        if row.delivery_count > 1:
            message["redelivered"] = True
            properties["delivery_info"]["redelivered"] = True
        return message


def _as_text(body: object) -> str | None:
    if isinstance(body, str):
        return body
    if isinstance(body, bytes):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None
