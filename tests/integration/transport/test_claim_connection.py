"""Claims on PostgreSQL with psycopg run on a connection the store holds (no pool checkout per
claim); a lost connection is replaced, a forked child leaves its parent's alone, and a claim
that finds the connection busy in another thread goes through SQLAlchemy — on a real
PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.db import engine_for, queue_tables
from link_message_queue.transport.options import TransportOptions
from link_message_queue.transport.rows import PendingRow
from link_message_queue.transport.store import MessageStore
from link_message_queue.transport.store.postgres import PostgresMessages

pytestmark = pytest.mark.postgres
fork = multiprocessing.get_context("fork")
MESSAGES = 20


def _store(url: str) -> MessageStore:
    return MessageStore(
        engine_for(url, TransportOptions()), queue_tables("linkmq_"), hold_connections=True
    )


def _put(store: MessageStore, queue: str, count: int) -> None:
    store.messages.put_many([PendingRow(queue, f'{{"n": {n}}}', 0, None) for n in range(count)])


def test_claim__no_pool_checkout_per_claim(migrated_postgres_url: str) -> None:
    store = _store(migrated_postgres_url)
    _put(store, "held-claims", MESSAGES)
    store.messages.claim("held-claims", "me", 30.0, 1)  # checks the claim connection out
    checkouts: list[object] = []

    def record(*_: Any) -> None:
        checkouts.append(object())

    event.listen(store.engine, "checkout", record)
    try:
        claimed = [store.messages.claim("held-claims", "me", 30.0, 1) for _ in range(MESSAGES - 1)]
    finally:
        event.remove(store.engine, "checkout", record)
        store.close()
    assert checkouts == []
    assert [len(rows) for rows in claimed] == [1] * (MESSAGES - 1)


def test_claim__acks_ride_along_and_takes_delete(migrated_postgres_url: str) -> None:
    store = _store(migrated_postgres_url)
    _put(store, "ride-along", 3)
    first = store.messages.claim("ride-along", "me", 30.0, 1)
    second = store.messages.claim("ride-along", "me", 30.0, 1, acked=[first[0].id])
    taken = store.messages.take("ride-along", 5, acked=[second[0].id])
    store.close()

    assert [row.payload for row in first + second + taken] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
    assert store.messages.size("ride-along") == 0
    assert store.messages.claim("ride-along", "me", 30.0, 5) == []  # nothing left: all deleted
    store.close()


def test_claim__a_lost_connection_is_replaced(migrated_postgres_url: str) -> None:
    store = _store(migrated_postgres_url)
    _put(store, "lost-claims", 2)
    first = store.messages.claim("lost-claims", "me", 30.0, 1)
    # The server ends every connection of the consumer (a restart, a fail-over).
    admin = sa.create_engine(migrated_postgres_url, poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        killed = connection.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    admin.dispose()
    assert killed >= 1
    with pytest.raises(sa.exc.OperationalError) as lost:
        store.messages.claim("lost-claims", "me", 30.0, 1, acked=[first[0].id])
    # A new connection:
    second = store.messages.claim("lost-claims", "me", 30.0, 1, acked=[first[0].id])
    store.close()

    assert lost.value.connection_invalidated
    assert [row.payload for row in first + second] == ['{"n": 0}', '{"n": 1}']
    assert store.messages.size("lost-claims") == 0


def _claim_in_child(url: str, done: Any) -> None:
    store = _store(url)
    rows = store.messages.claim("forked-claims", "child", 30.0, 1)
    done.put(len(rows))


def test_claim__a_forked_child_leaves_its_parents_connection_alone(
    migrated_postgres_url: str,
) -> None:
    store = _store(migrated_postgres_url)
    _put(store, "forked-claims", 3)
    assert len(store.messages.claim("forked-claims", "parent", 30.0, 1)) == 1
    done = fork.Queue()
    child = fork.Process(target=_claim_in_child, args=(migrated_postgres_url, done))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert done.get(timeout=5) == 1
    time.sleep(0.2)  # a child that closed the parent's socket would have done so by now
    assert len(store.messages.claim("forked-claims", "parent", 30.0, 1)) == 1
    store.close()


def test_claim__a_busy_claim_connection_lets_another_thread_claim(
    migrated_postgres_url: str,
) -> None:
    store = _store(migrated_postgres_url)
    _put(store, "busy-claims", 2)
    messages = store.messages
    assert isinstance(messages, PostgresMessages)
    claims = messages._hold_claims()
    claimed: list[int] = []
    with claims._lock:  # another thread's claim is running on the held connection
        worker = threading.Thread(
            target=lambda: claimed.extend(
                row.id for row in store.messages.claim("busy-claims", "other", 30.0, 1)
            )
        )
        worker.start()
        worker.join(timeout=30)
    claimed.extend(row.id for row in store.messages.claim("busy-claims", "me", 30.0, 1))
    store.close()
    assert len(claimed) == 2
    assert len(set(claimed)) == 2


def test_claim__a_store_not_asked_to_hold_gives_its_connection_back(
    migrated_postgres_url: str,
) -> None:
    # A runtime's or a monitor's store is never closed: each claim returns its connection, so
    # many such stores on one engine cannot drain the pool.
    store = MessageStore(
        engine_for(migrated_postgres_url, TransportOptions()), queue_tables("linkmq_")
    )
    _put(store, "unheld-claims", 2)
    pool = store.engine.pool
    assert isinstance(pool, sa.pool.QueuePool)
    before = pool.checkedout()
    claimed = store.messages.claim("unheld-claims", "me", 30.0, 1)
    taken = store.messages.take("unheld-claims", 1, acked=[claimed[0].id])

    assert pool.checkedout() == before
    assert [row.payload for row in claimed + taken] == ['{"n": 0}', '{"n": 1}']


def test_claim__stores_of_one_process_share_one_held_connection(
    migrated_postgres_url: str,
) -> None:
    # Flower opens a kombu connection (a transport, a store) per remote-control thread: each
    # holding its own connection ran the engine's pool dry and its API hung.
    stores = [_store(migrated_postgres_url) for _ in range(20)]
    _put(stores[0], "shared-claims", 20)
    pool = stores[0].engine.pool
    assert isinstance(pool, sa.pool.QueuePool)
    before = pool.checkedout()
    claimed = [store.messages.claim("shared-claims", "me", 30.0, 1) for store in stores]
    held = pool.checkedout() - before
    stores[0].close()

    assert held <= 1
    assert sorted(rows[0].payload for rows in claimed) == sorted(f'{{"n": {n}}}' for n in range(20))
