"""The demo's workflow configuration (``LINK_MQ_CONFIG=link_message_queue.demo_workflow``).

Users arrive as process-data messages for the archive handler over the channel ``demo_queue``,
whose dispatcher is the producer: each message is queued, consumed by a consumer step, and
archived into the application table ``demo_archive`` in the step's own transaction. Every
tenth user fails on its first attempt, to show a retry."""

from __future__ import annotations

import sqlalchemy as sa

from .engine import DispatchContext
from .messages import ProcessingMessage, WorkflowMessage
from .services import PRODUCER_SERVICE

USER_TYPE = "LinkMq\\Demo\\Type\\User"
ARCHIVE = "LinkMq\\Demo\\UserArchive"
NODE = "localhost"

metadata = sa.MetaData()
archive_table = sa.Table(
    "demo_archive",
    metadata,
    sa.Column("user_id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("message_uuid", sa.String(36), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
)


class FlakyDemoError(RuntimeError):
    """The demo's deliberate first-attempt failure."""


class UserArchive:
    """Writes each user into ``demo_archive`` on the consumer step's connection, so the row and
    the message's removal from the queue commit together."""

    def handle(self, message: ProcessingMessage, context: DispatchContext) -> None:
        if not isinstance(message, WorkflowMessage) or context.connection is None:
            raise TypeError(f"{ARCHIVE} takes workflow messages inside a consumer step")
        user = message.payload.data
        if user["id"] % 10 == 0 and context.attempt == 1:
            raise FlakyDemoError(f"user {user['id']} fails once, to show a retry")
        context.connection.execute(
            sa.insert(archive_table).values(
                user_id=user["id"],
                name=user["name"],
                message_uuid=str(message.uuid),
                attempt=context.attempt,
            )
        )


CHANNELS = {
    "local": {"targets": []},
    "demo_queue": {"targets": [ARCHIVE], "sender": NODE, "message_dispatcher": PRODUCER_SERVICE},
}
SERVICES = {ARCHIVE: UserArchive()}
