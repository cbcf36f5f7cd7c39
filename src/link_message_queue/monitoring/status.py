"""``link-mq status``: what the queues hold and who works on them, read from the database."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import sqlalchemy as sa

from ..db import QueueTables, masked, read_database_now, read_only
from ..text import table
from ..transport import TOUCH_INTERVAL_S, states


@dataclass
class QueueStatus:
    """One queue in ``link-mq status``: messages ``ready``, ``leased`` (in flight) and ``delayed``
    (retry back-off), the oldest ready message's age in seconds, and whether a live consumer touched
    it lately."""

    name: str
    ready: int = 0
    leased: int = 0  # in flight: a consumer holds them
    delayed: int = 0  # waiting for a retry's back-off
    oldest_age_s: float | None = None
    consumed: bool = False  # a live consumer (listed under consumers) is on this queue


@dataclass
class ConsumerStatus:
    """A live consumer (``host:pid:id``), the queues of its last heartbeat, and how many messages it
    holds leased now."""

    owner: str  # host:pid:id
    queues: list[str] = field(default_factory=list)  # what it consumes (its last heartbeat)
    holding: int = 0  # messages it has leased now


@dataclass
class OutboxStatus:
    """The outbox (RabbitMQ/Redis brokers): workflow messages ``pending`` (waiting for the relay)
    and the oldest one's age in seconds by the database's clock (``None`` when empty)."""

    pending: int = 0
    oldest_age_s: float | None = None


@dataclass
class Status:
    """What ``link-mq status`` shows: the database (URL masked), each queue, the dead-letter count,
    the live consumers and, when the app uses one, the outbox."""

    database: str
    queues: list[QueueStatus] = field(default_factory=list)
    dead_letters: int = 0
    # Live consumers (a heartbeat in the last few seconds) and any holder of a lease.
    consumers: list[ConsumerStatus] = field(default_factory=list)
    outbox: OutboxStatus | None = None  # None: the broker is linkmq+, there is no outbox

    def as_dict(self) -> dict[str, object]:
        """The status as a JSON-ready dict (for ``--json``); no ``outbox`` key without one."""
        shown = asdict(self)
        if self.outbox is None:
            del shown["outbox"]
        return shown


def read_status(
    engine: sa.Engine,
    tables: QueueTables,
    always_listed: Sequence[str] = (),
    *,
    outbox: bool = False,
) -> Status:
    """``always_listed``: queues shown even before anything declared them (the workflow queue,
    which exists in the database only once something was published to it). ``outbox``: the app
    uses one (``Settings.uses_outbox``): count what waits in it for the relay.

    Counts follow ``transport.states`` (what a claim takes is what ``ready`` counts; a message
    whose lease ran out is ready), at the database's now."""
    message, queue = tables.message, tables.queue
    with read_only(engine).connect() as connection:
        # One reading of the database's clock: every count and age below is at that instant.
        now = read_database_now(connection)
        counts = sa.select(
            message.c.queue,
            sa.func.sum(sa.case((states.ready(message, now), 1), else_=0)),
            sa.func.sum(sa.case((states.leased(message, now), 1), else_=0)),
            sa.func.sum(sa.case((states.delayed(message, now), 1), else_=0)),
            # The oldest ready message: one a consumer could take now and none has. A leased
            # one (an ETA task a worker holds until its time, a long task) or one in a retry's
            # back-off is not waiting, and counted it made the age of a healthy queue grow.
            sa.func.min(sa.case((states.ready(message, now), message.c.created_at))),
        ).group_by(message.c.queue)
        by_name = {
            name: QueueStatus(
                name,
                int(ready or 0),
                int(leased or 0),
                int(delayed or 0),
                None if oldest is None else round(now - oldest, 3),
            )
            for name, ready, leased, delayed, oldest in connection.execute(counts)
        }
        for name in always_listed:
            by_name.setdefault(name, QueueStatus(name))
        for (name,) in connection.execute(sa.select(queue.c.name)):
            by_name.setdefault(name, QueueStatus(name))
        dead = connection.execute(
            sa.select(sa.func.count()).select_from(tables.dead_letter)
        ).scalar_one()
        holding = {
            str(owner): int(count)
            for owner, count in connection.execute(
                sa.select(message.c.lease_owner, sa.func.count())
                .where(states.leased(message, now))
                .group_by(message.c.lease_owner)
            )
        }
        consumer = tables.consumer
        alive = connection.execute(
            sa.select(consumer.c.owner, consumer.c.queues).where(
                consumer.c.last_seen_at > now - 3 * TOUCH_INTERVAL_S
            )
        ).all()
        by_owner = {
            owner: ConsumerStatus(owner, json.loads(queues), int(holding.get(owner, 0)))
            for owner, queues in alive
        }
        for owner, count in holding.items():
            by_owner.setdefault(owner, ConsumerStatus(owner, [], int(count)))
        # A queue is consumed when a live consumer's last heartbeat lists it: the same source as
        # the consumers below (a publish also marks a queue used, so last_used_at cannot say).
        for name in {name for listed in by_owner.values() for name in listed.queues}:
            by_name.setdefault(name, QueueStatus(name)).consumed = True
        consumers = [by_owner[owner] for owner in sorted(by_owner)]
        waiting = _read_outbox(connection, tables, now) if outbox else None
    return Status(
        masked(engine.url),
        sorted(by_name.values(), key=lambda q: q.name),
        int(dead),
        consumers,
        waiting,
    )


def _read_outbox(connection: sa.Connection, tables: QueueTables, now: float) -> OutboxStatus:
    pending, oldest = connection.execute(
        sa.select(sa.func.count(), sa.func.min(tables.outbox.c.created_at))
    ).one()
    if oldest is None:
        return OutboxStatus(int(pending))
    # At least 0: rows written before created_at came from the database's clock carry the
    # producer host's, which may be ahead.
    return OutboxStatus(int(pending), max(0.0, round(now - oldest, 3)))


def render(status: Status) -> str:
    """The status as text: one line per queue, its name in full however long."""
    rows = [
        (
            entry.name,
            entry.ready,
            entry.leased,
            entry.delayed,
            "-" if entry.oldest_age_s is None else f"{entry.oldest_age_s:.1f}s",
            "yes" if entry.consumed else "no",
        )
        for entry in status.queues
    ]
    lines = [f"database {status.database}"]
    lines += table(
        ("queue", "ready", "leased", "delayed", "oldest", "consumer"),
        rows,
        right_aligned=(1, 2, 3, 4),
    )
    lines.append(f"dead letters: {status.dead_letters}")
    lines.append(f"consumers: {len(status.consumers)}")
    for consumer in status.consumers:
        queues = ", ".join(consumer.queues) or "-"
        lines.append(f"  {consumer.owner}  holding {consumer.holding}  on {queues}")
    if status.outbox is not None:
        waiting = status.outbox
        oldest = "" if waiting.oldest_age_s is None else f", oldest {waiting.oldest_age_s:.1f}s"
        lines.append(f"outbox: {waiting.pending} pending{oldest}")
    return "\n".join(lines)
