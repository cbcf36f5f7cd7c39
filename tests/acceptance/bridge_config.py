"""Workflow config for the bridge acceptance tests (``LINK_MQ_CONFIG``).

The handler appends ``start``/``end`` lines to ``LINK_MQ_TEST_RUNS`` (outside any transaction,
so a killed attempt still shows) and writes its row on the consumer step's connection (inside
the transaction, so only a committed attempt shows)."""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from link_message_queue.engine import DispatchContext
from link_message_queue.messages import ProcessingMessage, WorkflowMessage
from link_message_queue.services import PRODUCER_SERVICE

HANDLER = "Acceptance\\Recorder"
NODE = "localhost"

metadata = sa.MetaData()
handled = sa.Table(
    "acceptance_handled",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
)


def _note(event: str, number: int) -> None:
    with open(os.environ["LINK_MQ_TEST_RUNS"], "a", encoding="utf-8") as runs:
        runs.write(f"{event} {number} {os.getpid()} {time.time():.6f}\n")


class Recorder:
    def handle(self, message: ProcessingMessage, context: DispatchContext) -> None:
        assert isinstance(message, WorkflowMessage)
        assert context.connection is not None
        number, sleep_s = message.payload.data["n"], message.payload.data["sleep_s"]
        started = time.time()
        _note("start", number)
        if message.payload.data.get("fail"):
            raise ValueError(f"item {number} always fails")
        time.sleep(sleep_s)
        context.connection.execute(
            handled.insert().values(
                n=number, started_at=started, ended_at=time.time(), pid=os.getpid()
            )
        )
        _note("end", number)


CHANNELS = {
    "local": {"targets": []},
    "queue": {"targets": [HANDLER], "sender": NODE, "message_dispatcher": PRODUCER_SERVICE},
}
SERVICES = {HANDLER: Recorder()}
