"""Dead letters: messages that will not be tried again, kept with why, for a person to look at
and requeue (``link-mq dead-letters``)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..db import QueueTables, database_now, read_only
from ..db.dialects import chunked, parameter_limit
from ..text import counted

if TYPE_CHECKING:
    from .producer import Producer

logger = logging.getLogger(__name__)

POISON = "poison"
FAILED = "failed"


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message: its ``queue``, the raw ``body``, its name and uuid when it could
    be decoded, why it failed (``reason``, exception type, text and traceback), ``attempts`` made,
    and times as Unix seconds (``failed_at`` by the database's clock; ``first_attempt_at`` is
    not recorded yet: None)."""

    id: int
    queue: str
    message_name: str | None
    message_uuid: str | None
    body: str
    reason: str
    exception_type: str
    exception_message: str
    traceback: str
    attempts: int
    first_attempt_at: float | None
    failed_at: float


class DeadLetters:
    """The dead-letter table: messages that failed for good, kept for inspection (``link-mq
    dead-letters``). Database errors propagate as ``sqlalchemy.exc.SQLAlchemyError``."""

    def __init__(self, engine: sa.Engine, tables: QueueTables) -> None:
        self.engine = engine
        self.reader = read_only(engine)
        self.table = tables.dead_letter

    def add(
        self,
        connection: sa.Connection,
        *,
        queue: str,
        body: str,
        reason: str,
        error: BaseException,
        attempts: int,
        message_name: str | None = None,
        message_uuid: str | None = None,
        first_attempt_at: float | None = None,
    ) -> None:
        """Record a dead letter in the caller's transaction (which also removes the message)."""
        connection.execute(
            sa.insert(self.table).values(
                queue=queue,
                message_name=message_name,
                message_uuid=message_uuid,
                body=body,
                reason=reason,
                exception_type=f"{type(error).__module__}.{type(error).__qualname__}",
                exception_message=str(error),
                traceback="".join(traceback.format_exception(error)),
                attempts=attempts,
                first_attempt_at=first_attempt_at,
                # The database's clock, as every other time the project stores: hosts' clocks
                # differ, and a letter's time should order with the rest.
                failed_at=database_now(connection.dialect.name),
            )
        )
        logger.error(
            "dead letter %s (%s after %s): %s: %s",
            message_name or "<undecodable message>",
            reason,
            counted(attempts, "attempt"),
            type(error).__name__,
            error,
            extra={"action": "dead_letter", "reason": reason, "message_uuid": message_uuid},
        )

    def recent(self, limit: int = 100) -> list[DeadLetter]:
        """The latest ``limit`` dead letters, oldest first."""
        with self.reader.connect() as connection:
            rows = connection.execute(
                sa.select(self.table).order_by(self.table.c.id.desc()).limit(limit)
            )
            return [DeadLetter(**row._mapping) for row in rows][::-1]

    def get(self, dead_letter_id: int) -> DeadLetter | None:
        """The dead letter with ``dead_letter_id``, or None if there is none."""
        with self.reader.connect() as connection:
            row = connection.execute(
                sa.select(self.table).where(self.table.c.id == dead_letter_id)
            ).first()
        return None if row is None else DeadLetter(**row._mapping)

    def count(self) -> int:
        """How many dead letters are stored."""
        with self.reader.connect() as connection:
            return int(
                connection.execute(sa.select(sa.func.count()).select_from(self.table)).scalar_one()
            )

    def requeue(self, producer: Producer, ids: Sequence[int] | None = None) -> list[int]:
        """Put dead letters back on their queue and remove them, in one transaction (the
        producer publishes on it): either both happen or neither. ``ids``: the dead letters'
        ids; ``None`` means every one there is when this run takes them.

        Each dead letter is requeued exactly once however many requeues (or purges) run at
        once: this run takes the rows under a row lock (the write lock on SQLite) and publishes
        only those; a concurrent run waits for it and finds them gone. Returns the ids this run
        requeued, ascending (an empty list when another run took them all). Raises
        ``LookupError`` naming the ids in ``ids`` that are not (or no longer) there, having
        requeued none; ``BridgeError`` from the producer; ``sqlalchemy.exc.SQLAlchemyError``."""
        with self.engine.begin() as connection:
            # FOR UPDATE, in id order (so two runs lock in the same order and cannot deadlock):
            # a run that reads rows another is requeuing waits for it to commit, and then no
            # longer sees them. A plain read let both publish the same rows.
            query = sa.select(self.table).order_by(self.table.c.id).with_for_update()
            # Lists of ids go in chunks within the database's parameter limit (SQLite's may
            # be 999); the chunks of the sorted ids keep the locks in id order.
            per_statement = parameter_limit(connection) - 1
            if ids is None:
                rows = list(connection.execute(query))
            else:
                rows = [
                    row
                    for chunk in chunked(sorted(set(ids)), per_statement)
                    for row in connection.execute(query.where(self.table.c.id.in_(chunk)))
                ]
            letters = [DeadLetter(**row._mapping) for row in rows]
            missing = sorted(set(ids or ()) - {letter.id for letter in letters})
            if missing:
                raise LookupError(f"no dead letters with ids {missing}")
            taken = [letter.id for letter in letters]
            deleted = sum(
                connection.execute(sa.delete(self.table).where(self.table.c.id.in_(chunk))).rowcount
                for chunk in chunked(taken, per_statement)
            )
            if deleted != len(taken):
                # The lock rules this out; if a database ever lets it happen, publish nothing
                # rather than a letter another run has published.
                raise RuntimeError(
                    f"requeue locked {counted(len(taken), 'dead letter')} but deleted "
                    f"{deleted}: another run took some; nothing was requeued"
                )
            for letter in letters:
                producer.publish_body(letter.body, connection)
        for letter in letters:
            logger.info(
                "requeued dead letter %d (%s)",
                letter.id,
                letter.message_name,
                extra={"action": "requeue", "dead_letter_id": letter.id},
            )
        return taken

    def purge(self) -> int:
        """Delete every dead letter; return how many this call deleted (one statement: a letter
        a concurrent requeue or purge took is not counted, nor requeued as well)."""
        with self.engine.begin() as connection:
            return int(connection.execute(sa.delete(self.table)).rowcount)
