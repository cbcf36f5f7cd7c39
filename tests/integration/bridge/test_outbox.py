"""The outbox and its relay on a real SQLite file and a real PostgreSQL (the broker side is
tested with real RabbitMQ and Redis in tests/acceptance/test_scale_out.py)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from link_message_queue.bridge.outbox import Outbox, OutboxRelay, OutboxRow
from link_message_queue.db import engine_for
from link_message_queue.db.locks import Locks
from link_message_queue.db.schema import queue_tables
from link_message_queue.transport import (
    DEFAULT_MAX_MESSAGE_BYTES,
    PublishRefusedError,
    SchemaMissingError,
    upgrade,
)
from link_message_queue.transport.options import TransportOptions
from link_message_queue.transport.store import MessageStore


@pytest.fixture
def store(database_url: str) -> MessageStore:
    prefix = f"o{uuid.uuid4().hex[:8]}_"
    engine = engine_for(database_url, TransportOptions(table_prefix=prefix))
    upgrade(engine, prefix)
    return MessageStore(engine, queue_tables(prefix))


def test_outbox__rows_follow_the_callers_transaction(store: MessageStore) -> None:
    outbox = Outbox(store.engine, store.tables)
    with store.engine.begin() as connection:
        outbox.add("q", "kept", connection)
    with store.engine.connect() as connection:
        outbox.add("q", "rolled back", connection)
        connection.rollback()  # the caller's transaction fails
    outbox.add("q", "own transaction")
    assert [row.body for row in outbox.oldest(10)] == ["kept", "own transaction"]


@pytest.mark.parametrize("many", [False, True], ids=["add", "add_many"])
def test_outbox__first_write_on_a_database_without_the_tables(
    database_url: str, many: bool
) -> None:
    # Given a database without the tables (as a Redis/RabbitMQ broker's first dispatch sees it)
    prefix = f"f{uuid.uuid4().hex[:8]}_"
    engine = engine_for(database_url, TransportOptions(table_prefix=prefix))
    outbox = Outbox(engine, queue_tables(prefix))

    def write(body: str, *, commit: bool = True) -> None:
        with engine.connect() as connection:
            if many:
                outbox.add_many("q", [body], connection)
            else:
                outbox.add("q", body, connection)
            if commit:
                connection.commit()

    if engine.dialect.name == "sqlite":
        # Then on SQLite the tables are created, as the transport creates them on connect,
        # in the caller's transaction (which holds SQLite's write lock): a rollback drops
        # them, and the next write creates them again
        write("rolled back", commit=False)
        write("first")
        assert [row.body for row in outbox.oldest(10)] == ["first"]
    else:
        # Then on PostgreSQL the transport's error says what to run, not a raw SQL error
        with pytest.raises(SchemaMissingError, match="run `link-mq db upgrade`"):
            write("first")
        assert f"{prefix}outbox" not in sa.inspect(engine).get_table_names()


def test_outbox__add_many_with_a_body_over_the_limit_stores_none(store: MessageStore) -> None:
    outbox = Outbox(store.engine, store.tables)
    too_big = "x" * (DEFAULT_MAX_MESSAGE_BYTES + 1)
    with store.engine.begin() as connection:
        # The caller catches the refusal and commits
        with pytest.raises(PublishRefusedError, match="over the limit"):
            outbox.add_many("q", ["m0", "m1", too_big, "m3"], connection)
        outbox.add_many("q", ["later"], connection)
    assert [row.body for row in outbox.oldest(10)] == ["later"]


def test_relay__publishes_in_order_deletes_and_a_failure_keeps_the_rows(
    store: MessageStore,
) -> None:
    outbox = Outbox(store.engine, store.tables)
    for number in range(7):
        outbox.add("q", f"m{number}", countdown_s=None if number else 1.5, retries=number % 2)
    published: list[OutboxRow] = []
    failing = {"m4"}

    def publish(row: OutboxRow) -> None:
        if row.body in failing:
            raise ConnectionError("the broker is down")
        published.append(row)

    relay = OutboxRelay(outbox, store, publish, owner="relay-1", batch_size=3)
    with pytest.raises(ConnectionError):
        relay.run_once()
    # The first batch went out and was deleted; the failed batch stays, whole.
    assert [row.body for row in published] == ["m0", "m1", "m2", "m3"]
    assert [row.body for row in outbox.oldest(10)] == ["m3", "m4", "m5", "m6"]

    failing.clear()
    assert relay.run_once() == 4
    # At least once: m3 went out twice (its batch failed after it); the order held.
    assert [row.body for row in published] == ["m0", "m1", "m2", "m3", "m3", "m4", "m5", "m6"]
    assert outbox.size() == 0
    assert (published[0].countdown_s, published[1].retries) == (1.5, 1)


def test_relay__one_at_a_time(store: MessageStore) -> None:
    outbox = Outbox(store.engine, store.tables)
    outbox.add("q", "m")
    other = OutboxRelay(outbox, store, lambda row: None, owner="relay-2")
    assert Locks(store.engine, store.tables.lock).try_lock("outbox_relay", "relay-1", 30.0)
    assert other.run_once() == 0  # relay-1 holds the lock
    assert outbox.size() == 1
    Locks(store.engine, store.tables.lock).unlock("outbox_relay", "relay-1")
    assert other.run_once() == 1


def test_outbox__table_exists_after_upgrade(store: MessageStore) -> None:
    names = sa.inspect(store.engine).get_table_names()
    assert store.tables.outbox.name in names


def test_outbox__a_message_over_the_size_limit_is_refused_and_nothing_is_stored(
    store: MessageStore,
) -> None:
    outbox = Outbox(store.engine, store.tables)
    with pytest.raises(PublishRefusedError, match="over the limit of 4194304"):
        outbox.add("q", "x" * (4 * 1024 * 1024 + 1))
    assert outbox.size() == 0
