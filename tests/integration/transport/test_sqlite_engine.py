"""An application's own SQLite engine beside linkmq+: ``sqlite_engine``/``configure_sqlite_engine``
begin its transactions IMMEDIATE, and a publish inside a DEFERRED transaction that SQLite refuses
the write lock says what to change — on a real SQLite file."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import kombu
import pytest
import sqlalchemy as sa

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.bridge.outbox import Outbox
from link_message_queue.db.schema import queue_tables
from link_message_queue.transport import (
    DeferredTransactionError,
    TransportOptionError,
    configure_sqlite_engine,
    publish_on,
    sqlite_engine,
)

from ...databases import sqlite_deferred_engine

# How long the application's transaction lets the other writer go first (it takes
# milliseconds; an IMMEDIATE transaction makes it wait until its commit instead).
WRITER_WAIT_S = 2.0


@pytest.fixture
def broker(sqlite_url: str) -> Iterator[kombu.Connection]:
    with kombu.Connection("linkmq+" + sqlite_url) as connection:
        queue = connection.SimpleQueue("orders")
        queue.put("warm-up")  # tables, queue and binding exist before the test's transaction
        queue.get(timeout=5).ack()
        queue.close()
        yield connection


def _publish_after_another_writer(
    app_engine: sa.Engine, broker: kombu.Connection, sqlite_url: str
) -> None:
    """Read in the application's transaction while another connection (a worker's claim, say)
    writes, then publish in the same transaction. An IMMEDIATE transaction holds the write lock:
    the other writer waits for its commit."""
    other = sa.create_engine(sqlite_url, poolclass=sa.pool.NullPool)
    written: list[int] = []

    def write() -> None:
        with other.begin() as writer:
            writer.exec_driver_sql("UPDATE linkmq_queue SET last_used_at = last_used_at + 1")
        written.append(1)

    writer = threading.Thread(target=write)
    try:
        with app_engine.begin() as connection:
            connection.exec_driver_sql("SELECT count(*) FROM linkmq_queue").scalar()
            writer.start()
            writer.join(timeout=WRITER_WAIT_S)  # done at once unless our transaction holds the lock
            with publish_on(connection):
                broker.SimpleQueue("orders").put("order 1")
    finally:
        writer.join()
        other.dispose()
    assert written == [1]


def _size(broker: kombu.Connection) -> int:
    return int(broker.SimpleQueue("orders").qsize())


def test_sqlite_engine__deferred_transaction_refused_the_lock_says_what_to_do(
    broker: kombu.Connection, sqlite_url: str
) -> None:
    app_engine = sqlite_deferred_engine(sqlite_url)
    try:
        with pytest.raises(DeferredTransactionError) as raised:
            _publish_after_another_writer(app_engine, broker, sqlite_url)
    finally:
        app_engine.dispose()

    message = str(raised.value)
    assert "SQLITE_BUSY_SNAPSHOT" in message
    assert "BEGIN IMMEDIATE" in message
    assert "sqlite_engine(url)" in message
    assert "configure_sqlite_engine(engine)" in message
    assert _size(broker) == 0  # rolled back with the caller's transaction


def test_sqlite_engine__immediate_transaction_publishes_after_another_writer(
    broker: kombu.Connection, sqlite_url: str
) -> None:
    app_engine = sqlite_engine(sqlite_url)
    try:
        _publish_after_another_writer(app_engine, broker, sqlite_url)
    finally:
        app_engine.dispose()

    assert _size(broker) == 1


def test_sqlite_engine__configure_an_existing_engine_once(
    broker: kombu.Connection, sqlite_url: str
) -> None:
    app_engine = sa.create_engine(sqlite_url)
    try:
        assert configure_sqlite_engine(app_engine) is app_engine
        configure_sqlite_engine(app_engine)  # twice: still one BEGIN per transaction
        _publish_after_another_writer(app_engine, broker, sqlite_url)
        with app_engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        app_engine.dispose()

    assert _size(broker) == 1


def test_sqlite_engine__read_only_transactions_do_not_wait_for_a_writer(sqlite_url: str) -> None:
    app_engine = sqlite_engine(sqlite_url, busy_timeout_s=0.1)
    try:
        with app_engine.begin() as writer:
            writer.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with app_engine.begin() as writer:
            writer.exec_driver_sql("INSERT INTO t VALUES (1)")  # holds the write lock
            reader = app_engine.execution_options(linkmq_read_only=True)
            with reader.begin() as connection:
                assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
            with pytest.raises(sa.exc.OperationalError, match="database is locked"):
                with app_engine.begin() as other_writer:
                    other_writer.exec_driver_sql("SELECT 1")
    finally:
        app_engine.dispose()


def test_sqlite_engine__outbox_row_in_a_deferred_transaction_says_what_to_do(
    sqlite_url: str,
) -> None:
    # The same trap with another broker: the outbox row is the write into the caller's
    # transaction.
    own_engine = sqlite_engine(sqlite_url)
    tables = queue_tables("linkmq_")
    with kombu.Connection("linkmq+" + sqlite_url) as broker:
        broker.connect()  # creates the tables
    app_engine = sqlite_deferred_engine(sqlite_url)
    try:
        outbox = Outbox(own_engine, tables)
        with app_engine.begin() as connection:
            connection.exec_driver_sql("SELECT count(*) FROM linkmq_outbox").scalar()
            outbox.add("q", "{}")  # another producer, in its own transaction
            with pytest.raises(DeferredTransactionError, match="sqlite_engine"):
                outbox.add("q", "{}", connection)
            connection.rollback()
    finally:
        app_engine.dispose()
        own_engine.dispose()


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://app@db/app", "sqlite://", "sqlite:///:memory:"]
)
def test_sqlite_engine__refuses_what_is_not_a_sqlite_file(url: str) -> None:
    with pytest.raises(TransportOptionError):
        sqlite_engine(url)


def test_configure_sqlite_engine__refuses_another_database() -> None:
    engine = sa.create_engine("postgresql+psycopg://app@db/app")
    with pytest.raises(TransportOptionError, match="SQLite engines"):
        configure_sqlite_engine(engine)
