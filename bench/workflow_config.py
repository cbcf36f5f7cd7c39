"""Workflow config for the end-to-end bridge benchmark (``LINK_MQ_CONFIG``): one handler that
writes a row per message on the consumer step's connection, with the time it ran."""

from __future__ import annotations

import time

import sqlalchemy as sa

from link_message_queue.engine import DispatchContext
from link_message_queue.messages import ProcessingMessage, WorkflowMessage
from link_message_queue.services import PRODUCER_SERVICE

HANDLER = "Bench\\Sink"
NODE = "localhost"

metadata = sa.MetaData()
sink = sa.Table(
    "bench_sink",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("handled_at", sa.Float, nullable=False),
)


class Sink:
    def handle(self, message: ProcessingMessage, context: DispatchContext) -> None:
        assert isinstance(message, WorkflowMessage)
        assert context.connection is not None
        context.connection.execute(
            sink.insert().values(n=message.payload.data, handled_at=time.time())
        )


CHANNELS = {
    "local": {"targets": []},
    "queue": {"targets": [HANDLER], "sender": NODE, "message_dispatcher": PRODUCER_SERVICE},
}
SERVICES = {HANDLER: Sink()}
