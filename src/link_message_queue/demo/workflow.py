"""The demo's workflow (``LINK_MQ_CONFIG=link_message_queue.demo.workflow``): import users from
a CSV file (``LINK_MQ_DEMO_CSV``) into the application table ``demo_user``, in chunks.

A ``parallel_chunk`` process starts one sub-process per chunk of ``LINK_MQ_DEMO_CHUNK`` users;
each collects its chunk from the CSV file and writes it into ``demo_user``. The workflow
processor's queue is on, so every step (each StartSubProcess, collect-data and process-data)
goes through the queue as a Celery task, and each write commits with its consumer step. Every
other chunk fails once, on its first attempt, to show a retry."""

from __future__ import annotations

import os
from dataclasses import replace

import sqlalchemy as sa

from ..engine import DispatchContext
from ..messages import Payload, WorkflowMessage
from ..messages.names import WorkflowStep, workflow_message_name
from ..processor.connectors import CsvSource, SqlTableTarget
from ..processor.types import TypeRegistry

NODE = "localhost"
SOURCE = "LinkMq\\Demo\\UserCsv"
TARGET = "LinkMq\\Demo\\UserTable"
USER = "LinkMq\\Demo\\Type\\User"
USERS = "LinkMq\\Demo\\Type\\UserCollection"
IMPORT = "LinkMq\\Demo\\Type\\UserImport"
START = workflow_message_name(IMPORT, WorkflowStep.COLLECT_DATA)

TYPES = TypeRegistry()
TYPES.record(USER, {"id": "integer", "name": "string", "email": "string"})
TYPES.collection(USERS, item_type=USER)

metadata = sa.MetaData()
user_table = sa.Table(
    "demo_user",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("email", sa.String(200), nullable=False),
    sa.Column("message_uuid", sa.String(36), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
)


class FlakyDemoError(RuntimeError):
    """The demo's deliberate first-attempt failure."""


class UserTable(SqlTableTarget):
    """Writes a chunk of users into ``demo_user`` with the message and attempt that wrote it;
    every other chunk fails on its first attempt (a transient error: the consumer retries)."""

    retry_on = (*SqlTableTarget.retry_on, FlakyDemoError)

    def handle_process_data(
        self, message: WorkflowMessage, context: DispatchContext
    ) -> WorkflowMessage:
        """Write the chunk's users with the message uuid and attempt; raise ``FlakyDemoError`` on
        the first attempt of every second chunk."""
        offset, limit = message.metadata.get("offset", 0), message.metadata.get("limit", 1)
        second = isinstance(offset, int) and isinstance(limit, int) and (offset // limit) % 2 == 1
        if second and context.attempt == 1:
            raise FlakyDemoError(f"the chunk at offset {offset} fails once, to show a retry")
        rows = [
            {**user, "message_uuid": str(message.uuid), "attempt": context.attempt}
            for user in message.payload.data
        ]
        return super().handle_process_data(replace(message, payload=Payload(USERS, rows)), context)


def _chunk_of_users() -> dict[str, object]:
    return {
        "process_type": "linear_messaging",
        "tasks": [
            {"task_type": "collect_data", "source": SOURCE, "processing_type": USERS},
            {"task_type": "process_data", "target": TARGET, "allowed_types": [USERS]},
        ],
    }


PROCESSES = {
    START: {
        "process_type": "parallel_chunk",
        "tasks": [
            {
                "task_type": "run_sub_process",
                "target_node_name": NODE,
                "process_definition": _chunk_of_users(),
            }
        ],
    }
}
CHANNELS = {"local": {"targets": [SOURCE, TARGET]}}
SERVICES = {
    SOURCE: CsvSource(os.environ.get("LINK_MQ_DEMO_CSV", "demo_users.csv"), TYPES),
    TARGET: UserTable("demo_user", TYPES),
}
ENABLE_WORKFLOW_PROCESSOR_MESSAGE_QUEUE = True


def write_users_csv(path: str, count: int) -> None:
    """Write ``count`` demo users (``id,name,email``) to the CSV file at ``path``."""
    with open(path, "w", encoding="utf-8") as file:
        file.write("id,name,email\n")
        for number in range(1, count + 1):
            file.write(f"{number},User {number},user{number}@example.com\n")


def start_message(total: int, chunk: int) -> WorkflowMessage:
    """The collect-data command that starts the demo import of ``total`` users in chunks of
    ``chunk``."""
    return WorkflowMessage.collect_data_of(
        IMPORT,
        origin="link-mq demo",
        target=NODE,
        metadata={"offset": 0, "limit": chunk, "total_items": total},
    )
