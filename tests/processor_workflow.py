"""A real workflow for the processor tests (also a ``LINK_MQ_CONFIG`` module for the acceptance
tests): users from a CSV file (``LINK_MQ_TEST_CSV``) into the application table ``app_user``,
as a linear, a for-each and a chunk process; every step goes through the queue.

``LINK_MQ_TEST_SLOW_S`` makes the SQL target sleep before writing (to kill a worker mid-way);
``LINK_MQ_TEST_FAIL_EMAIL`` makes it fail on the user with that e-mail address;
``LINK_MQ_TEST_RUNS`` names a file it notes each start in.
"""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from link_message_queue.demo.workflow import write_users_csv  # noqa: F401  (for the tests)
from link_message_queue.engine import DispatchContext
from link_message_queue.messages import Payload, WorkflowMessage
from link_message_queue.messages.names import WorkflowStep, workflow_message_name
from link_message_queue.processor.connectors import CsvSource, SqlTableTarget
from link_message_queue.processor.types import TypeRegistry

NODE = "localhost"
SOURCE = "csv:::users"
TARGET = "sql:::app_user"
USER = "Acme\\Type\\User"
USERS = "Acme\\Type\\UserCollection"

TYPES = TypeRegistry()
TYPES.record("Acme\\Type\\User", {"id": "integer", "name": "string", "email": "string"})
TYPES.collection(USERS, item_type=USER)

metadata = sa.MetaData()
app_user = sa.Table(
    "app_user",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("email", sa.String(200), nullable=False),
)

COLLECT_USERS = workflow_message_name(USERS, WorkflowStep.COLLECT_DATA)
USERS_COLLECTED = workflow_message_name(USERS, WorkflowStep.DATA_COLLECTED)
CHUNK_START = workflow_message_name("Acme\\Type\\UserImport", WorkflowStep.COLLECT_DATA)

_COLLECT = {"task_type": "collect_data", "source": SOURCE, "processing_type": USERS}
_WRITE_ALL = {"task_type": "process_data", "target": TARGET, "allowed_types": [USERS]}
_WRITE_ONE = {"task_type": "process_data", "target": TARGET, "allowed_types": [USER]}

PROCESSES = {
    # collect every user, then write them all
    COLLECT_USERS: {"process_type": "linear_messaging", "tasks": [_COLLECT, _WRITE_ALL]},
    # the collection arrives with the start message; one sub-process writes each user
    USERS_COLLECTED: {
        "process_type": "parallel_for_each",
        "tasks": [
            {
                "task_type": "run_sub_process",
                "target_node_name": NODE,
                "process_definition": {"process_type": "linear_messaging", "tasks": [_WRITE_ONE]},
            }
        ],
    },
    # one sub-process per chunk of `limit` users: collect that chunk, write it
    CHUNK_START: {
        "process_type": "parallel_chunk",
        "tasks": [
            {
                "task_type": "run_sub_process",
                "target_node_name": NODE,
                "process_definition": {
                    "process_type": "linear_messaging",
                    "tasks": [_COLLECT, _WRITE_ALL],
                },
            }
        ],
    },
}


class SlowOrFailingTarget(SqlTableTarget):
    def handle_process_data(
        self, message: WorkflowMessage, context: DispatchContext
    ) -> WorkflowMessage:
        runs = os.environ.get("LINK_MQ_TEST_RUNS")
        if runs:  # outside any transaction: a killed attempt still shows
            with open(runs, "a", encoding="utf-8") as file:
                file.write(f"start {os.getpid()} {time.time():.6f}\n")
        time.sleep(float(os.environ.get("LINK_MQ_TEST_SLOW_S", "0")))
        failing = os.environ.get("LINK_MQ_TEST_FAIL_EMAIL")
        data = message.payload.data
        rows = data if isinstance(data, list) else [data]
        if failing and any(row["email"] == failing for row in rows):
            raise ValueError(f"refusing to import {failing}")
        return super().handle_process_data(message, context)


def services() -> dict[str, object]:
    return {
        SOURCE: CsvSource(os.environ["LINK_MQ_TEST_CSV"], TYPES),
        TARGET: SlowOrFailingTarget("app_user", TYPES),
    }


CHANNELS = {"local": {"targets": [SOURCE, TARGET]}}
SERVICES = services() if "LINK_MQ_TEST_CSV" in os.environ else {}
ENABLE_WORKFLOW_PROCESSOR_MESSAGE_QUEUE = True


def start_linear() -> WorkflowMessage:
    return WorkflowMessage.collect_data_of(USERS, origin="test-trigger", target=NODE)


def start_for_each(count: int) -> WorkflowMessage:
    users = [
        {"id": n, "name": f"User {n}", "email": f"user{n}@example.com"} for n in range(1, count + 1)
    ]
    return WorkflowMessage.new_data_collected(Payload(USERS, users), "test-trigger", NODE)


def start_chunks(total: int, limit: int) -> WorkflowMessage:
    return WorkflowMessage.collect_data_of(
        "Acme\\Type\\UserImport",
        origin="test-trigger",
        target=NODE,
        metadata={"offset": 0, "limit": limit, "total_items": total},
    )
