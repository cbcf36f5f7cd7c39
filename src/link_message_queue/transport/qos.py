"""Acknowledgement with leases: ack deletes the row, reject gives it back or deletes it, and
unacked messages are handed back at once when the channel closes."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from kombu.transport import virtual

if TYPE_CHECKING:
    from .channel import Channel

logger = logging.getLogger(__name__)


class AckBuffer:
    """Acked message ids waiting to be deleted. The consumer deletes them in the transaction of
    its next claim (or on its own when it has nothing to claim), so a busy consumer commits
    once per message. Acks may come from any thread (Celery's result handler, thread pools)."""

    def __init__(self) -> None:
        self._ids: list[int] = []
        self._lock = threading.Lock()

    def add(self, message_id: int) -> None:
        """Buffer the acked ``message_id`` for deletion."""
        with self._lock:
            self._ids.append(message_id)

    def take(self) -> list[int]:
        """Return the buffered ids and empty the buffer."""
        with self._lock:
            taken, self._ids = self._ids, []
            return taken

    def give_back(self, ids: list[int]) -> None:
        """Ids whose delete failed: they are tried again with the next claim."""
        with self._lock:
            self._ids[:0] = ids


def row_id(delivery_tag: str) -> int:
    """The message row behind a delivery tag ``<row id>.<delivery count>``."""
    return int(str(delivery_tag).partition(".")[0])


class LeaseQoS(virtual.QoS):
    """kombu's virtual ``QoS`` (prefetch and unacked bookkeeping) with the database's side: an ack
    deletes the row, a reject deletes or releases it, and the lease keeper stops renewing it."""

    channel: Channel

    def ack(self, delivery_tag: str) -> None:
        """kombu ``QoS.ack`` (AMQP basic.ack): delete the message (buffered while a consumer loop
        drains events, deleted with its next claim)."""
        message_id = row_id(delivery_tag)
        transport = self.channel.connection
        if transport is not None and transport.acks_ride_along:
            # A consumer loop runs rounds (the wake-up below starts one): its next claim, or
            # its flush when there is nothing to claim, carries the delete.
            transport.acks.add(message_id)
        else:
            self.channel.store.messages.ack([message_id])
            self.channel.leases.forget([message_id])
        logger.debug("ack %s", message_id, extra={"action": "ack", "message_id": message_id})
        super().ack(delivery_tag)
        self._wake_consumer()

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        """kombu ``QoS.reject`` (AMQP basic.reject): with ``requeue`` the lease is released so the
        message is ready again; without, the message is deleted."""
        message_id = row_id(delivery_tag)
        if requeue:
            self.channel.store.messages.release([message_id], self.channel.leases.owner)
        else:
            self.channel.store.messages.ack([message_id])
        self.channel.leases.forget([message_id])
        logger.info(
            "reject %s (%s)",
            message_id,
            "requeued" if requeue else "dropped",
            extra={"action": "reject", "message_id": message_id, "requeue": requeue},
        )
        self._quick_ack(delivery_tag)
        self._wake_consumer()

    def _wake_consumer(self) -> None:
        # The prefetch window has room again: wake a consumer waiting in drain_events.
        transport = self.channel.connection
        if transport is not None:
            transport.signal.notify()

    def restore_unacked(self) -> list[tuple[BaseException, Any]]:
        """Hand every unacked message back in one statement (the rows never left the table, so
        nothing is re-published)."""
        self._flush()
        delivered = list(self._delivered.items())
        self._delivered.clear()
        ids = [row_id(tag) for tag, _ in delivered]
        if not ids:
            return []
        try:
            self.channel.store.messages.release(ids, self.channel.leases.owner)
        except Exception as exc:
            # The leases still run out, so the messages come back later; kombu logs these.
            return [(exc, message) for _, message in delivered]
        finally:
            self.channel.leases.forget(ids)
        logger.info(
            "restored %d unacked messages", len(ids), extra={"action": "restore", "count": len(ids)}
        )
        return []
