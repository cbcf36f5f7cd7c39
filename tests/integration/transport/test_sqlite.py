"""SQLite's message statements (transport/store/sqlite.py): the write lock is taken only to
write, and a claim that loses rows to another consumer between its read and its update gets only
its own."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from typing import Any

import kombu
import pytest
import sqlalchemy as sa

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.db import engine_for
from link_message_queue.db.schema import queue_tables
from link_message_queue.transport import upgrade
from link_message_queue.transport.options import TransportOptions
from link_message_queue.transport.rows import PendingRow
from link_message_queue.transport.store.connections import Connections
from link_message_queue.transport.store.sqlite import SqliteMessages


def test_sqlite__an_idle_consumer_never_waits_for_the_write_lock(sqlite_url: str) -> None:
    broker_url = "linkmq+" + sqlite_url
    options = {"busy_timeout_s": 2.0}
    with kombu.Connection(broker_url, transport_options=options) as connection:
        with closing(connection.SimpleQueue("idle")) as queue:
            queue.put("first")
            assert queue.get(timeout=5).payload == "first"  # tables made, consumer set up

            # Another process's long write transaction holds the database's write lock.
            writer = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
            writer.execute("BEGIN IMMEDIATE")
            try:
                started = time.monotonic()
                for _ in range(5):
                    with pytest.raises(queue.Empty):
                        queue.get(timeout=0.1)
                waited = time.monotonic() - started
            finally:
                writer.execute("ROLLBACK")
                writer.close()
            # Polling an empty queue reads without the lock: no busy wait (2 s each before).
            assert waited < 1.5

            queue.put("after")
            assert queue.get(timeout=5).payload == "after"


def _messages(sqlite_url: str) -> tuple[SqliteMessages, sqlite3.Connection]:
    """SqliteMessages on one fixed connection (StaticPool), so a test can trace it."""
    options = TransportOptions(engine_options={"poolclass": sa.pool.StaticPool})
    engine = engine_for(sqlite_url, options)
    upgrade(engine, "linkmq_")
    connection: Any = engine.raw_connection()
    driver: sqlite3.Connection = connection.driver_connection
    connection.close()
    return SqliteMessages(Connections(engine), queue_tables("linkmq_")), driver


def test_sqlite__a_claim_that_loses_rows_to_a_rival_between_read_and_update_gets_only_its_own(
    sqlite_url: str,
) -> None:
    messages, traced = _messages(sqlite_url)
    messages.put_many([PendingRow("q", f"m{n}", 0, None) for n in range(6)])
    rival = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)

    def rival_claims_first_two(statement: str) -> None:
        # Runs as the claim's UPDATE starts, after its read: the rival leases two of the rows
        # the claim has just read.
        if statement.startswith("UPDATE") and not rival_claims_first_two.done:  # type: ignore[attr-defined]
            rival_claims_first_two.done = True  # type: ignore[attr-defined]
            rival.execute(
                "UPDATE linkmq_message SET lease_owner = 'rival', visible_at = ? "
                "WHERE payload IN ('m0', 'm1')",
                (time.time() + 30,),
            )

    rival_claims_first_two.done = False  # type: ignore[attr-defined]
    traced.set_trace_callback(rival_claims_first_two)
    try:
        claimed = messages.claim("q", "me", 30.0, 4, acked=())
    finally:
        traced.set_trace_callback(None)

    assert rival_claims_first_two.done  # type: ignore[attr-defined]
    assert sorted(row.payload for row in claimed) == ["m2", "m3"]
    assert all(row.delivery_count == 1 for row in claimed)
    owners = dict(
        rival.execute("SELECT payload, lease_owner FROM linkmq_message ORDER BY id").fetchall()
    )
    assert owners == {"m0": "rival", "m1": "rival", "m2": "me", "m3": "me", "m4": None, "m5": None}
    # The next claim of the same owner takes the rest, and nothing twice.
    rest = messages.claim("q", "me", 30.0, 10, acked=())
    assert sorted(row.payload for row in rest) == ["m4", "m5"]
    rival.close()


def test_sqlite__a_batch_larger_than_one_statement_is_written_whole_and_in_order(
    sqlite_url: str,
) -> None:
    messages, _ = _messages(sqlite_url)
    messages.put_many([PendingRow("q", f"m{n}", 0, None) for n in range(2500)])
    taken = messages.take("q", 5000, acked=())
    assert [row.payload for row in sorted(taken, key=lambda row: row.id)] == [
        f"m{n}" for n in range(2500)
    ]
    assert messages.take("q", 10, acked=()) == []


def test_sqlite__a_publish_refused_for_the_lock_raises_a_connection_error_and_writes_nothing(
    sqlite_url: str,
) -> None:
    broker_url = "linkmq+" + sqlite_url
    with kombu.Connection(broker_url, transport_options={"busy_timeout_s": 0.3}) as connection:
        with closing(connection.SimpleQueue("refused")) as queue:
            queue.put("first")
            writer = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
            writer.execute("BEGIN IMMEDIATE")
            try:
                # The publish waits out the busy timeout and fails with an error kombu and
                # Celery treat as a connection error (sqlite3's, raised as SQLAlchemy's).
                with pytest.raises(connection.transport.connection_errors) as refused:
                    queue.put("refused")
                assert isinstance(refused.value, sa.exc.OperationalError)
            finally:
                writer.execute("ROLLBACK")
                writer.close()

            queue.put("after")
            bodies = [queue.get(timeout=5).payload for _ in range(2)]
            assert bodies == ["first", "after"]
            with pytest.raises(queue.Empty):
                queue.get(timeout=0.3)


def test_sqlite__a_batch_refused_midway_writes_nothing_and_leaves_the_connection_usable(
    sqlite_url: str,
) -> None:
    messages, driver = _messages(sqlite_url)
    # The database itself refuses the 1,500th row, in the second of three INSERT statements.
    driver.execute(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON linkmq_message "
        "WHEN NEW.payload = 'poison' BEGIN SELECT RAISE(ABORT, 'poison refused'); END"
    )
    batch = [PendingRow("q", f"m{n}", 0, None) for n in range(2500)]
    batch[1500] = PendingRow("q", "poison", 0, None)

    with pytest.raises(sa.exc.DBAPIError, match="poison refused"):
        messages.put_many(batch)

    assert messages.take("q", 5000, acked=()) == []
    assert not driver.in_transaction
    messages.put_many(batch[:10])
    assert len(messages.take("q", 5000, acked=())) == 10


def test_sqlite__a_take_whose_delete_fails_delivers_nothing_and_its_rows_come_back(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The take's lease (60 s in production) shortened, so the rows come back within the test.
    monkeypatch.setattr("link_message_queue.transport.store.sqlite._TAKE_LEASE_S", 0.5)
    messages, driver = _messages(sqlite_url)
    messages.put("q", "m1", 0, None)
    messages.put("q", "m2", 0, None)
    driver.execute(
        "CREATE TRIGGER refuse_delete BEFORE DELETE ON linkmq_message "
        "BEGIN SELECT RAISE(ABORT, 'delete refused'); END"
    )

    with pytest.raises(sa.exc.DBAPIError, match="delete refused"):
        messages.take("q", 10, acked=())
    driver.execute("DROP TRIGGER refuse_delete")

    # Leased to the failed take: not delivered again at once, and again once the lease ran out.
    assert messages.take("q", 10, acked=()) == []
    time.sleep(0.6)
    again = messages.take("q", 10, acked=())
    assert sorted((row.payload, row.delivery_count) for row in again) == [("m1", 2), ("m2", 2)]
    assert messages.take("q", 10, acked=()) == []
