"""The producer ``link.message_queue.producer``: a message dispatcher that puts workflow
messages on the queue as Celery tasks. Any channel can name it as its ``message_dispatcher``;
``link.app.workflow_processor_message_queue`` is its alias."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..bulk import send_many
from ..engine import DispatchContext
from ..messages import ProcessingMessage, encode
from ..services import CONSUMER_SENDER, PRODUCER_SERVICE, ServiceRegistry
from ..transport import publish_all_or_none, publish_on
from .errors import BridgeError
from .outbox import Outbox
from .taskbody import WORKFLOW_TASK

if TYPE_CHECKING:
    import sqlalchemy as sa
    from celery import Celery

logger = logging.getLogger(__name__)

WORKFLOW_PROCESSOR_QUEUE_CHANNEL = "workflow_processor_message_queue"


class Producer:
    """With the linkmq+ broker a message is a Celery task in the application database at
    once; with RabbitMQ or Redis it goes into the outbox, and the relay publishes it."""

    def __init__(self, app: Celery, queue: str, outbox: Outbox | None = None) -> None:
        """``outbox``: given for a broker other than linkmq+ (``Settings.uses_outbox``)."""
        self.app = app
        self.queue = queue
        self.outbox = outbox

    @property
    def transactional(self) -> bool:
        """Whether a publish can join the caller's database transaction: the linkmq+ broker,
        or any other broker through the outbox."""
        return self._in_database or self.outbox is not None

    @property
    def _in_database(self) -> bool:
        return str(self.app.conf.broker_url or "").startswith("linkmq+")

    def handle(self, message: ProcessingMessage, context: DispatchContext) -> None:
        """As a channel's dispatcher: inside a consumer step the message joins the step's
        transaction, so it is queued exactly when the step commits."""
        self.dispatch(message, connection=context.connection)

    def dispatch(self, message: ProcessingMessage, connection: sa.Connection | None = None) -> None:
        """Queue ``message``; with ``connection``, inside that connection's transaction:
        visible when it commits, gone if it rolls back."""
        self.publish_body(encode(message), connection)
        logger.info(
            "enqueue %s %s -> %s",
            message.name,
            message.origin,
            message.target,
            extra={"action": "enqueue", "message_uuid": str(message.uuid), "queue": self.queue},
        )

    def dispatch_many(
        self, messages: Sequence[ProcessingMessage], connection: sa.Connection
    ) -> None:
        """Queue ``messages``, in order, inside ``connection``'s transaction: visible when it
        commits, gone if it rolls back, none of them in it if this call raises.
        With linkmq+ they are one multi-row write (``send_many`` of the workflow task, when this
        app defines it; else one ``send_task`` each inside ``publish_all_or_none``); with
        another broker, rows of the outbox. Raises ``BridgeError`` as ``publish_body`` does,
        ``PublishRefusedError`` for a message over the transport's ``max_message_bytes``, and
        the write's SQLAlchemy errors."""
        bodies = [encode(message) for message in messages]
        if self.outbox is not None:
            self.outbox.add_many(self.queue, bodies, connection)
        else:
            self._check_transactional()
            task = self.app.tasks.get(WORKFLOW_TASK)
            if task is not None:
                send_many(task, [(body,) for body in bodies], connection, queue=self.queue)
            else:
                # As send_many: a send that raises leaves none of the batch in the transaction.
                with publish_all_or_none(connection):
                    for body in bodies:
                        self._send(body)
        for message in messages:
            logger.info(
                "enqueue %s %s -> %s",
                message.name,
                message.origin,
                message.target,
                extra={
                    "action": "enqueue",
                    "message_uuid": str(message.uuid),
                    "queue": self.queue,
                },
            )

    def publish_body(self, body: str, connection: sa.Connection | None = None) -> None:
        """Send a task ``body`` (JSON text) to the workflow queue: into the outbox when there is
        one, else to the broker; with ``connection``, in that transaction. Raises ``BridgeError``
        for a transactional publish when the broker is not ``linkmq+`` in the application database.
        """
        if self.outbox is not None:
            self.outbox.add(self.queue, body, connection)
            return
        if connection is None:
            self._send(body)
            return
        self._check_transactional()
        with publish_on(connection):
            self._send(body)

    def _check_transactional(self) -> None:
        if not self.transactional:
            raise BridgeError(
                "a transactional dispatch needs the linkmq+ broker in the application database; "
                f"the broker here is {self.app.conf.broker_url.split('://')[0]}://…"
            )

    def _send(self, body: str) -> None:
        self.app.send_task(WORKFLOW_TASK, args=(body,), queue=self.queue)


def register_producer(registry: ServiceRegistry, producer: Producer) -> None:
    """Register ``producer`` in ``registry`` under its reserved service name, as a service that
    enqueues."""
    registry.register(PRODUCER_SERVICE, producer, enqueues=True, reserved=True)


def enable_workflow_processor_message_queue(
    channels: Mapping[str, Any], node_name: str
) -> dict[str, Any]:
    """``channels`` plus the general queue of the workflow processor: every message the
    processor on ``node_name`` sends goes through the queue (as prooph LINK's app-core)."""
    if WORKFLOW_PROCESSOR_QUEUE_CHANNEL in channels:
        raise BridgeError(f"a channel named {WORKFLOW_PROCESSOR_QUEUE_CHANNEL!r} exists already")
    if node_name == CONSUMER_SENDER:
        raise BridgeError("the node name cannot be the consumer's own sender name")
    return {
        **channels,
        WORKFLOW_PROCESSOR_QUEUE_CHANNEL: {
            "targets": ["*"],
            "sender": node_name,
            "message_dispatcher": "link.app.workflow_processor_message_queue",
        },
    }
