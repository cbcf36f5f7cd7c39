"""Statements whose parameters grow with the data stay within the database's limit: a worker
holding tens of thousands of prefetched ETA tasks renews and releases them all (psycopg refuses
more than 65,535 parameters a statement; SQLite before 3.32 allows 999), a batch publish of
hundreds of messages commits on such a SQLite, and a failing renewal does not stop the
consumer's heartbeat."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from link_message_queue.db import engine_for
from link_message_queue.db.schema import queue_tables
from link_message_queue.transport import upgrade
from link_message_queue.transport.leases import LeaseKeeper
from link_message_queue.transport.options import TransportOptions
from link_message_queue.transport.rows import PendingRow
from link_message_queue.transport.store import MessageStore

OLD_SQLITE_LIMIT = 999
OWNER = "holder"


@pytest.fixture
def old_sqlite_store(sqlite_url: str) -> Iterator[MessageStore]:
    """A store on a SQLite whose every connection allows 999 variables a statement (the limit
    before 3.32, and of builds compiled with it)."""
    engine = engine_for(sqlite_url, TransportOptions())

    @event.listens_for(engine, "connect")
    def _old_limit(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, OLD_SQLITE_LIMIT)

    engine.dispose()  # every connection from now on gets the listener
    upgrade(engine, "linkmq_")
    store = MessageStore(engine, queue_tables("linkmq_"))
    store.queues.declare_queue("held", None)
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) == OLD_SQLITE_LIMIT  # type: ignore[union-attr]
    yield store
    store.close()
    engine.dispose()


def _count(store: MessageStore, queue: str) -> int:
    message = store.tables.message
    with store.engine.connect() as connection:
        statement = sa.select(sa.func.count()).where(message.c.queue == queue)
        return int(connection.execute(statement).scalar_one())


def _hold(store: MessageStore, count: int) -> list[int]:
    """``count`` messages of queue ``held`` leased to ``OWNER``: written by an executemany and
    claimed 100 at a time (statements that fit any limit), as a worker's prefetch does."""
    message = store.tables.message
    now = time.time()
    rows = [
        {"queue": "held", "priority": 0, "payload": f"{i}", "created_at": now, "visible_at": now}
        for i in range(count)
    ]
    with store.engine.begin() as connection:
        connection.execute(sa.insert(message), rows)
    ids: list[int] = []
    while len(ids) < count:
        ids += [row.id for row in store.messages.claim("held", OWNER, 60.0, 100)]
    return ids


def test_parameter_limits__sqlite_999_renews_releases_and_acks_2000_held_messages(
    old_sqlite_store: MessageStore,
) -> None:
    # Given a worker holding 2,000 messages on a SQLite that allows 999 variables a statement
    store = old_sqlite_store
    ids = _hold(store, 2000)
    # When it renews them all in one call, Then every lease is renewed
    assert store.messages.renew(ids, OWNER, 60.0) == set(ids)
    # and on shutdown all are released
    assert store.messages.release(ids, OWNER) == 2000
    # and a claim of 2,000 leases no more than one statement can name, and acks them
    claimed = [row.id for row in store.messages.claim("held", OWNER, 60.0, 2000)]
    assert 0 < len(claimed) < OLD_SQLITE_LIMIT
    assert store.messages.ack(claimed) == len(claimed)
    taken = store.messages.take("held", 2000) + store.messages.take("held", 2000)
    assert len(claimed) + len(taken) == 2000
    # and acks of 2,000 in one call go through
    ids = _hold(store, 2000)
    assert store.messages.ack(ids) == 2000
    assert _count(store, "held") == 0


def test_parameter_limits__sqlite_999_commits_a_batch_of_500_messages(
    old_sqlite_store: MessageStore,
) -> None:
    # Given a batch of 500 messages (3,500 parameters in one INSERT of the old code)
    store = old_sqlite_store
    batch = [PendingRow("held", f"m{i}", 0, None) for i in range(500)]
    # When it is published alone, and inside a caller's transaction (publish_on)
    store.messages.put_many(batch)
    with store.engine.begin() as connection:
        store.messages.put_many(batch, connection)
    # Then all are there, in order
    assert _count(store, "held") == 1000
    taken = store.messages.take("held", 600) + store.messages.take("held", 600)
    assert [row.payload for row in taken] == [row.payload for row in batch] * 2


@pytest.mark.postgres
def test_parameter_limits__postgres_renews_70000_held_ids_in_one_call(
    migrated_postgres_url: str,
) -> None:
    # Given a worker holding 70,000 messages (prefetched ETA tasks): more ids than psycopg
    # takes parameters in a statement
    engine = engine_for(migrated_postgres_url, TransportOptions())
    store = MessageStore(engine, queue_tables("linkmq_"))
    queue = f"eta_{time.time_ns()}"
    table = store.tables.message.name
    try:
        with engine.begin() as connection:
            ids = list(
                connection.execute(
                    sa.text(
                        f"INSERT INTO {table} (queue, priority, payload, created_at, visible_at, "
                        "delivery_count, lease_owner) SELECT :queue, 0, 'eta', 0, "
                        "extract(epoch FROM now()) + 60, 1, :owner "
                        "FROM generate_series(1, 70000) RETURNING id"
                    ),
                    {"queue": queue, "owner": OWNER},
                ).scalars()
            )
        # When it renews them all in one call, Then every lease is renewed
        assert store.messages.renew(ids, OWNER, 60.0) == set(ids)
        # and on shutdown all are released, and acks of that many go through too
        assert store.messages.release(ids, OWNER) == 70000
        assert store.messages.ack(ids) == 70000
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DELETE FROM {table} WHERE queue = :q"), {"q": queue})
        store.close()
        engine.dispose()


def test_parameter_limits__the_heartbeat_beats_while_renewals_fail(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a keeper holding an id the database refuses (past SQLite's 64-bit integers), so
    # that every renewal raises
    engine = engine_for(sqlite_url, TransportOptions())
    upgrade(engine, "linkmq_")
    store = MessageStore(engine, queue_tables("linkmq_"))
    store.queues.declare_queue("alive", None)
    keeper = LeaseKeeper(
        store,
        "beating",
        lease_s=3.0,
        renew_interval_s=0.05,
        cleanup_interval_s=None,
        active_queues=lambda: ["alive"],
    )
    caplog.set_level(logging.ERROR, logger="link_message_queue.transport.leases")
    consumer = store.tables.consumer
    try:
        keeper.hold([2**70], time.monotonic())
        # When its rounds run, Then each renewal failure is logged and the heartbeat still
        # lists the consumer
        deadline = time.monotonic() + 5
        beat = None
        while beat is None and time.monotonic() < deadline:
            time.sleep(0.05)
            with engine.connect() as connection:
                beat = connection.execute(
                    sa.select(consumer.c.queues).where(consumer.c.owner == "beating")
                ).scalar_one_or_none()
        assert beat == '["alive"]'
        assert any("lease renewal failed" in r.getMessage() for r in caplog.records)
    finally:
        keeper.stop()
        store.close()
        engine.dispose()
