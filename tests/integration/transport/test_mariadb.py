"""linkmq+ on a real MariaDB (127.0.0.1:3306, root): the MySQL code path of the store — claims
with SKIP LOCKED and no UPDATE … RETURNING, INSERT IGNORE, upserts, expiry in batches."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import kombu
import pytest
import sqlalchemy as sa

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.db import engine_for
from link_message_queue.db.locks import Locks
from link_message_queue.db.schema import SCHEMA_REVISION, queue_tables
from link_message_queue.monitoring.gauges import Gauges
from link_message_queue.transport import publish_on, upgrade
from link_message_queue.transport.options import TransportOptions
from link_message_queue.transport.rows import PendingRow
from link_message_queue.transport.store import MessageStore


@pytest.fixture
def store(mariadb_url: str) -> MessageStore:
    prefix = f"m{uuid.uuid4().hex[:6]}_"
    engine = engine_for(mariadb_url, TransportOptions(table_prefix=prefix))
    assert upgrade(engine, prefix) == SCHEMA_REVISION
    assert upgrade(engine, prefix) == SCHEMA_REVISION  # idempotent
    return MessageStore(engine, queue_tables(prefix))


def test_mariadb__kombu_priorities_fifo_ack_and_times_to_the_microsecond(mariadb_url: str) -> None:
    prefix = f"k{uuid.uuid4().hex[:6]}_"
    upgrade(engine_for(mariadb_url, TransportOptions(table_prefix=prefix)), prefix)
    options = {"table_prefix": prefix}
    with kombu.Connection(f"linkmq+{mariadb_url}", transport_options=options) as connection:
        queue = connection.SimpleQueue("maria")
        for number in range(6):
            queue.put({"n": number}, priority=number % 3)
        received = []
        for _ in range(6):
            message = queue.get(timeout=5)
            received.append(message.payload["n"])
            message.ack()
        assert received == [2, 5, 1, 4, 0, 3]  # higher priority first, FIFO within one
        assert queue.qsize() == 0
        queue.close()


def test_mariadb__claims_never_share_a_message_and_leases_run_out(store: MessageStore) -> None:
    store.messages.put_many([PendingRow("q", f"m{n}", 0, None) for n in range(300)])
    claimed: Counter[int] = Counter()
    lock = threading.Lock()

    def consume(owner: str) -> None:
        while rows := store.messages.claim("q", owner, 30.0, 7):
            with lock:
                claimed.update(row.id for row in rows)
            store.messages.ack([row.id for row in rows])

    threads = [threading.Thread(target=consume, args=(f"c{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(claimed) == 300
    assert set(claimed.values()) == {1}

    store.messages.put("q", "leased", 0, None)
    (first,) = store.messages.claim("q", "dies", 0.3, 1)
    assert store.messages.claim("q", "other", 30.0, 1) == []  # still leased
    time.sleep(0.4)
    (again,) = store.messages.claim("q", "other", 30.0, 1)
    assert (again.id, again.delivery_count) == (first.id, 2)


def test_mariadb__no_ack_take_expiry_upserts_locks_and_bindings(store: MessageStore) -> None:
    store.messages.put("events", "e1", 0, None)
    store.messages.put("events", "gone", 0, -1.0)  # its time-to-live already ran out
    assert [row.payload for row in store.messages.take("events", 10)] == ["e1"]
    assert store.messages.delete_expired(1000) == 1
    assert store.messages.size("events") == 0

    store.consumers.heartbeat("worker-1", ["events"])
    store.consumers.heartbeat("worker-1", ["events", "celery"])  # an upsert, not a duplicate key
    gauges = Gauges(store.engine, store.tables.gauge)
    gauges.set({"tick_lag_seconds": 0.25})
    gauges.set({"tick_lag_seconds": 0.5})
    with store.engine.connect() as connection:
        consumers = connection.execute(sa.select(store.tables.consumer.c.queues)).scalars().all()
        gauge = connection.execute(sa.select(store.tables.gauge.c.value)).scalar_one()
    assert consumers == ['["celery", "events"]']
    assert gauge == 0.5

    locks = Locks(store.engine, store.tables.lock)
    assert locks.try_lock("step", "a", 30.0)
    assert not locks.try_lock("step", "b", 30.0)
    locks.unlock("step", "a")
    assert locks.try_lock("step", "b", 30.0)

    store.queues.declare_queue("bound", None)
    store.queues.declare_queue("bound", None)  # INSERT IGNORE
    store.bindings.bind("x", exchange_type="fanout", routing_key="", pattern="", queue="bound")
    store.bindings.bind("x", exchange_type="fanout", routing_key="", pattern="", queue="bound")
    assert store.bindings.of_exchange("x") == [("fanout", "", "", "bound")]


def test_mariadb__publish_on_follows_the_callers_transaction(mariadb_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}_"
    engine = engine_for(mariadb_url, TransportOptions(table_prefix=prefix))
    upgrade(engine, prefix)
    options = {"table_prefix": prefix}
    with kombu.Connection(f"linkmq+{mariadb_url}", transport_options=options) as connection:
        queue = connection.SimpleQueue("tx")
        with engine.connect() as app_connection:
            with publish_on(app_connection):
                queue.put({"kept": True})
            app_connection.commit()
            with publish_on(app_connection):
                queue.put({"kept": False})
            app_connection.rollback()
        message = queue.get(timeout=5)
        assert message.payload == {"kept": True}
        message.ack()
        assert queue.qsize() == 0
        queue.close()


def test_mariadb__a_claim_that_times_out_on_a_lock_is_repeated(mariadb_url: str) -> None:
    """A real lock wait time-out (1205): another transaction holds an acked row for 1.5 s while
    the claim that deletes it may wait only 1 s; the repeated claim then goes through."""
    prefix = f"w{uuid.uuid4().hex[:6]}_"
    options = TransportOptions(
        table_prefix=prefix,
        engine_options={"connect_args": {"init_command": "SET innodb_lock_wait_timeout = 1"}},
    )
    engine = engine_for(mariadb_url, options)
    upgrade(engine, prefix)
    store = MessageStore(engine, queue_tables(prefix))
    store.messages.put("q", "acked", 0, None)
    store.messages.put("q", "next", 0, None)
    (acked,) = store.messages.claim("q", "me", 30.0, 1)

    holder = sa.create_engine(mariadb_url, poolclass=sa.pool.NullPool)
    held = threading.Event()

    def hold_the_row() -> None:
        with holder.begin() as connection:
            connection.execute(
                sa.text(f"SELECT id FROM {prefix}message WHERE id = :id FOR UPDATE"),
                {"id": acked.id},
            )
            held.set()
            time.sleep(1.5)

    thread = threading.Thread(target=hold_the_row)
    thread.start()
    assert held.wait(10)
    started = time.monotonic()
    rows = store.messages.claim("q", "me", 30.0, 1, acked=[acked.id])
    waited = time.monotonic() - started
    thread.join(timeout=10)
    holder.dispose()
    assert [row.payload for row in rows] == ["next"]
    assert waited >= 1.0  # the first try timed out on the held row
    assert store.messages.size("q") == 0  # the acked row is gone, the other one is leased
