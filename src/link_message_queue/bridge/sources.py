"""The tick step's two message sources (``tick_step.MessageSource``).

``DeliverySource``: the workflow queue on the ``linkmq+`` database, through the transport's
direct delivery API. A message is leased (renewed by the transport's lease keeper while its
handler runs) and deleted in the handler's transaction; a retry hands it back in place, delayed.

``BrokerSource``: the workflow queue in RabbitMQ or Redis (``LINK_MQ_BROKER_URL``), by
``basic_get``. The handler's transaction records the message uuid (a redelivered duplicate is
skipped) and the message is acknowledged only after it committed; a retry goes back through the
outbox, with back-off. A step that dies leaves its unacknowledged message to the broker, which
delivers it again."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import sqlalchemy as sa
from celery import Celery

from ..transport import Deliveries, Delivery
from .outbox import Outbox
from .taskbody import workflow_body
from .tick_step import Received


class _Delivered:
    """A ``linkmq+`` delivery as the step receives it; dead-lettered as the stored row when its
    workflow body cannot be read."""

    deduplicate = False  # leased: no other consumer has it while it is held

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.attempt = delivery.attempt
        self.text = delivery.payload

    def workflow_body(self) -> str:
        delivery = self.delivery
        return workflow_body(delivery.headers.get("task"), delivery.content_type, delivery.body)

    def complete(self, connection: sa.Connection) -> None:
        self.delivery.complete(connection)

    def retry(self, workflow_body: str, delay_s: float) -> None:
        self.delivery.retry(delay_s)

    def acknowledge(self) -> None:
        """Nothing: ``complete`` deleted it in the transaction that committed."""


class DeliverySource:
    """The ``linkmq+`` workflow queue: ``deliveries`` (``transport.Deliveries``) takes its
    messages one at a time."""

    def __init__(self, deliveries: Deliveries) -> None:
        self.deliveries = deliveries

    def receive(self, limit: int) -> Generator[Received, None, None]:
        """Up to ``limit`` deliveries, each claimed when the previous one was settled. One the
        step could not settle (its error ends the step and closes this generator) is let go:
        renewed forever, it would never come back while this process lives."""
        for _ in range(limit):
            delivery = self.deliveries.take()
            if delivery is None:
                return
            try:
                yield _Delivered(delivery)
            finally:
                delivery.let_go()


class _Fetched:
    """A message fetched from RabbitMQ or Redis as the step receives it; dead-lettered as its task
    body when its workflow body cannot be read."""

    deduplicate = True  # the broker may deliver it again: its uuid is recorded

    def __init__(self, message: Any, outbox: Outbox, queue: str) -> None:
        self.message = message
        self.outbox = outbox
        self.queue = queue
        self.headers = message.headers or {}
        self.attempt = int(self.headers.get("retries") or 0) + 1
        body = message.body
        self.text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)

    def workflow_body(self) -> str:
        return workflow_body(self.headers.get("task"), self.message.content_type, self.message.body)

    def complete(self, connection: sa.Connection) -> None:
        """Nothing in the transaction: acknowledged once it committed."""

    def retry(self, workflow_body: str, delay_s: float) -> None:
        # Back on the queue through the outbox: committed before the ack, so a crash between
        # the two repeats the message (and its uuid skips the duplicate).
        self.outbox.add(self.queue, workflow_body, countdown_s=delay_s, retries=self.attempt)
        self.message.ack()

    def acknowledge(self) -> None:
        self.message.ack()


class BrokerSource:
    """The workflow ``queue`` in Celery ``app``'s broker (RabbitMQ or Redis); retries are
    published again through ``outbox``."""

    def __init__(self, app: Celery, outbox: Outbox, queue: str) -> None:
        self.app = app
        self.outbox = outbox
        self.queue = queue

    def receive(self, limit: int) -> Generator[Received, None, None]:
        """Up to ``limit`` messages by ``basic_get`` on one broker connection, opened for the
        step and closed with the generator; raises the broker's connection errors."""
        with (
            self.app.connection_for_read() as connection,
            connection.SimpleQueue(self.queue, no_ack=False) as queue,
        ):
            for _ in range(limit):
                try:
                    message = queue.get(block=False)
                except queue.Empty:
                    return
                yield _Fetched(message, self.outbox, self.queue)
