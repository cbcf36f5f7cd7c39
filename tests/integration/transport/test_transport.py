"""linkmq+ semantics beyond kombu's suite: leases, crash recovery, concurrency, transactional
publish, limits and errors — on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import kombu
import pytest
import sqlalchemy as sa

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.db.schema import SCHEMA_REVISION
from link_message_queue.transport import (
    NameTooLongError,
    PublishRefusedError,
    SchemaMissingError,
    TransportError,
    TransportOptionError,
    publish_on,
    upgrade,
)

from . import processes

spawn = multiprocessing.get_context("spawn")
SHORT_LEASE = {"lease_s": 1.0, "lease_renew_interval_s": 0.2}


def _rows(broker_url: str, queue: str) -> list[sa.Row[Any]]:
    engine = sa.create_engine(broker_url.removeprefix("linkmq+"), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(
                    sa.text(
                        "SELECT id, lease_owner, delivery_count FROM linkmq_message "
                        "WHERE queue = :queue ORDER BY id"
                    ),
                    {"queue": queue},
                )
            )
    finally:
        engine.dispose()


@pytest.fixture
def connection(broker_url: str) -> Iterator[kombu.Connection]:
    with kombu.Connection(broker_url, transport_options=SHORT_LEASE) as connection:
        yield connection


def test_transport__ack_deletes_the_row(connection: kombu.Connection, broker_url: str) -> None:
    with closing(connection.SimpleQueue("acked")) as queue:
        queue.put({"n": 1})
        message = queue.get(timeout=2)
        assert len(_rows(broker_url, "acked")) == 1

        message.ack()

        assert _rows(broker_url, "acked") == []


def test_transport__fifo_within_a_priority(connection: kombu.Connection) -> None:
    with closing(connection.SimpleQueue("fifo")) as queue:
        for number in range(30):
            queue.put(number)

        received = []
        for _ in range(30):
            message = queue.get(timeout=2)
            received.append(message.payload)
            message.ack()

    assert received == list(range(30))


def test_transport__unacked_message_comes_back_when_its_lease_runs_out(broker_url: str) -> None:
    # Given a message claimed by a consumer that stops renewing (its keeper is stopped)
    with kombu.Connection(broker_url, transport_options=SHORT_LEASE) as first:
        with closing(first.SimpleQueue("lease")) as queue:
            queue.put("work")
            claimed = queue.get(timeout=2)
            first.transport.leases.stop()
            with kombu.Connection(broker_url, transport_options=SHORT_LEASE) as second:
                with closing(second.SimpleQueue("lease")) as other:
                    # While the lease lives nobody else gets it
                    with pytest.raises(other.Empty):
                        other.get(timeout=0.3)
                    # When it runs out, the message comes back marked redelivered
                    again = other.get(timeout=3)
                    assert again.payload == claimed.payload
                    assert again.delivery_info["redelivered"] is True
                    again.ack()
            first.transport.leases.forget(first.transport.leases.held())


def test_transport__live_consumer_renews_its_leases(broker_url: str) -> None:
    with kombu.Connection(broker_url, transport_options=SHORT_LEASE) as holder:
        with closing(holder.SimpleQueue("renewed")) as queue:
            queue.put("long task")
            message = queue.get(timeout=2)
            with kombu.Connection(broker_url, transport_options=SHORT_LEASE) as other:
                with closing(other.SimpleQueue("renewed")) as competitor:
                    # Three lease lengths pass; the holder is alive, so nothing is redelivered.
                    with pytest.raises(competitor.Empty):
                        competitor.get(timeout=3.0)
            message.ack()
    assert _rows(broker_url, "renewed") == []


def test_transport__closing_returns_unacked_messages_at_once(broker_url: str) -> None:
    options = {"lease_s": 60.0}
    with kombu.Connection(broker_url, transport_options=options) as first:
        with closing(first.SimpleQueue("restore")) as queue:
            queue.put("a")
            queue.get(timeout=2)
    # The 60 s lease did not have to run out.
    with kombu.Connection(broker_url, transport_options=options) as second:
        with closing(second.SimpleQueue("restore")) as queue:
            message = queue.get(timeout=2)
            assert message.payload == "a"
            assert message.delivery_info["redelivered"] is True
            message.ack()


def test_transport__sigkilled_consumer_loses_nothing(broker_url: str) -> None:
    with (
        kombu.Connection(broker_url) as connection,
        closing(connection.SimpleQueue("crash")) as queue,
    ):
        queue.put("survives")
    ready = spawn.Queue()
    child = spawn.Process(
        target=processes.hold_one_message, args=(broker_url, "crash", SHORT_LEASE, ready)
    )
    child.start()
    try:
        assert ready.get(timeout=30) == "survives"
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(timeout=10)
        assert child.exitcode == -signal.SIGKILL
        (row,) = _rows(broker_url, "crash")
        assert row.lease_owner is not None
    finally:
        if child.is_alive():
            child.kill()

    with kombu.Connection(broker_url, transport_options=SHORT_LEASE) as connection:
        with closing(connection.SimpleQueue("crash")) as queue:
            message = queue.get(timeout=5)
            assert message.payload == "survives"
            assert message.delivery_info["redelivered"] is True
            message.ack()


def test_transport__concurrent_consumers_never_share_a_live_message(broker_url: str) -> None:
    total = 400
    done = spawn.Queue()
    producers = [
        spawn.Process(
            target=processes.publish_range, args=(broker_url, "shared", start, start + 100, done)
        )
        for start in range(0, total, 100)
    ]
    results = spawn.Queue()
    consumers = [
        spawn.Process(
            target=processes.consume_all,
            args=(broker_url, "shared", {"lease_s": 30.0}, 3.0, results),
        )
        for _ in range(3)
    ]
    for process in producers + consumers:
        process.start()
    try:
        assert sum(done.get(timeout=60) for _ in producers) == total
        seen = [body for _ in consumers for body in results.get(timeout=120)]
    finally:
        _join_or_kill(producers + consumers)
    _assert_each_seen_once(seen, total, broker_url, "shared")


def test_transport__concurrent_no_ack_consumers_never_share_a_message(broker_url: str) -> None:
    total = 300
    with kombu.Connection(broker_url) as connection:
        with closing(connection.SimpleQueue("taken")) as queue:
            for number in range(total):
                queue.put(number)
    results = spawn.Queue()
    takers = [
        spawn.Process(target=processes.take_all, args=(broker_url, "taken", 3.0, results))
        for _ in range(3)
    ]
    for process in takers:
        process.start()
    try:
        seen = [body for _ in takers for body in results.get(timeout=120)]
    finally:
        _join_or_kill(takers)
    _assert_each_seen_once(seen, total, broker_url, "taken")


def _join_or_kill(children: list[Any]) -> None:
    for process in children:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


def _assert_each_seen_once(seen: list[Any], total: int, broker_url: str, queue: str) -> None:
    counts = Counter(seen)
    assert sorted(counts) == list(range(total))
    assert max(counts.values()) == 1
    assert _rows(broker_url, queue) == []


def test_transport__purge_and_size_count_ready_messages_only(connection: kombu.Connection) -> None:
    with closing(connection.SimpleQueue("counted")) as queue:
        for number in range(5):
            queue.put(number)
        held = queue.get_nowait()  # basic_get: claims exactly one

        assert queue.qsize() == 4
        assert queue.clear() == 4
        assert queue.qsize() == 0
        held.ack()


def test_transport__message_over_the_size_limit_is_refused(broker_url: str) -> None:
    options = {**SHORT_LEASE, "max_message_bytes": 1024}
    with kombu.Connection(broker_url, transport_options=options) as connection:
        with closing(connection.SimpleQueue("limited")) as queue:
            with pytest.raises(PublishRefusedError, match="over the limit of 1024"):
                queue.put("x" * 2000)
            assert queue.qsize() == 0


def test_transport__a_negative_expiration_is_refused_and_nothing_is_stored(
    broker_url: str,
) -> None:
    # Before: expiration=-1 was stored with a TTL of -1 s, and the message expired unseen;
    # RabbitMQ refuses a negative expiration.
    with kombu.Connection(broker_url, transport_options=SHORT_LEASE) as connection:
        with closing(connection.SimpleQueue("short-lived")) as queue:
            for expiration in (-1, -0.001):
                with pytest.raises(PublishRefusedError, match=r"expiration '-1.*0 or more"):
                    queue.put("lost?", expiration=expiration)
            assert queue.qsize() == 0
            queue.put("kept", expiration=60)
            assert queue.get(timeout=5).payload == "kept"


@pytest.mark.parametrize("exchange", ["", "work"], ids=["default-exchange", "direct-exchange"])
def test_transport__a_first_publish_past_sqlites_busy_timeout_is_retried_not_lost(
    sqlite_url: str, exchange: str
) -> None:
    # Given the tables in place, and another connection holding SQLite's write lock a little
    # past the busy timeout
    broker_url, options = "linkmq+" + sqlite_url, {"busy_timeout_s": 0.5}
    with kombu.Connection(broker_url, transport_options=options) as connection:
        connection.default_channel  # noqa: B018  (creates the tables)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), check_same_thread=False)
    holder.isolation_level = None
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.8, lambda: holder.execute("COMMIT"))
    release.start()
    queue = kombu.Queue("work", kombu.Exchange(exchange, "direct"), "work")
    try:
        # When a new connection's first publish declares its queue (as Celery's does): the
        # declare fails after the busy timeout, its retry reconnects and declares again
        with kombu.Connection(broker_url, transport_options=options) as connection:
            connection.Producer().publish(
                "kept",
                exchange=queue.exchange,
                routing_key="work",
                declare=[queue],
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0, "interval_step": 0.2},
            )
    finally:
        release.join()
        holder.close()
    # Then the producer, left on the closed channel, was revived and published once (before:
    # AttributeError "'NoneType' object has no attribute ..." on the closed channel)
    assert len(_rows(broker_url, "work")) == 1


def test_transport__names_over_amqps_255_bytes_are_refused_on_every_database(
    broker_url: str,
) -> None:
    # Before: PostgreSQL refused a 300-character queue name with a DataError, SQLite stored it.
    at_limit, over = "q" * 255, "q" * 256
    multibyte_over = "é" * 128  # 128 characters, 256 bytes
    with kombu.Connection(broker_url, transport_options=SHORT_LEASE) as connection:
        with closing(connection.SimpleQueue(at_limit)) as queue:
            queue.put("fits")
            assert queue.get(timeout=5).payload == "fits"
        for name in (over, multibyte_over):
            with pytest.raises(NameTooLongError, match="at most 255 bytes"):
                connection.SimpleQueue(name)
        producer = connection.Producer()
        with pytest.raises(NameTooLongError, match="routing key"):
            producer.publish("x", routing_key=over)
        exchange = kombu.Exchange("q" * 300, type="direct")
        with pytest.raises(NameTooLongError, match="exchange name"):
            kombu.Queue("short", exchange, routing_key="short")(
                connection.default_channel
            ).declare()


def test_transport__publish_to_an_unreachable_database_raises(broker_url: str) -> None:
    url = sa.engine.make_url(broker_url.removeprefix("linkmq+"))
    dead = (
        "sqlite:////nonexistent-linkmq-dir/db.sqlite3"
        if url.get_backend_name() == "sqlite"
        else url.set(port=1).render_as_string(hide_password=False)
    )
    connection = kombu.Connection("linkmq+" + dead, transport_options={"max_retries": 1})
    # kombu re-raises the transport's connection errors as its own OperationalError, which
    # Celery retries on.
    with pytest.raises(kombu.exceptions.OperationalError, match=r"database|connect"):
        connection.Producer().publish({"n": 1}, routing_key="nowhere", retry=False)


def test_transport__unknown_option_and_bad_prefix_are_refused(broker_url: str) -> None:
    with pytest.raises(TransportOptionError, match="unknown linkmq transport options"):
        kombu.Connection(broker_url, transport_options={"lease_seconds": 3}).connect()
    with pytest.raises(TransportOptionError, match="SQL identifier"):
        kombu.Connection(broker_url, transport_options={"table_prefix": "x; DROP"}).connect()


# -- transactional publish ----------------------------------------------------------------


def _app_engine(broker_url: str) -> sa.Engine:
    return sa.create_engine(broker_url.removeprefix("linkmq+"), poolclass=sa.pool.NullPool)


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_transport__publish_on_follows_the_callers_transaction(
    broker_url: str, outcome: str
) -> None:
    queue_name = f"outbox_{outcome}"
    with kombu.Connection(broker_url, transport_options=SHORT_LEASE) as broker:
        broker.connect()
        engine = _app_engine(broker_url)
        try:
            with engine.connect() as app:
                app.execute(sa.text("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY)"))
                app.commit()
                transaction = app.begin()
                app.execute(sa.text("INSERT INTO orders (id) VALUES (1)"))
                with publish_on(app), closing(broker.SimpleQueue(queue_name)) as queue:
                    queue.put({"order": 1})
                    if outcome == "commit":
                        transaction.commit()
                    else:
                        transaction.rollback()
                    expected = 1 if outcome == "commit" else 0
                    assert len(_rows(broker_url, queue_name)) == expected
                    if expected:
                        message = queue.get(timeout=2)
                        assert message.payload == {"order": 1}
                        message.ack()
                app.execute(sa.text("DROP TABLE orders"))
                app.commit()
        finally:
            engine.dispose()


def test_transport__message_is_invisible_until_the_caller_commits(broker_url: str) -> None:
    with kombu.Connection(broker_url, transport_options=SHORT_LEASE) as broker:
        engine = _app_engine(broker_url)
        try:
            with engine.connect() as app, closing(broker.SimpleQueue("pending")) as queue:
                queue.put("warm-up")  # declare outside the transaction
                queue.get(timeout=2).ack()
                transaction = app.begin()
                with publish_on(app):
                    queue.put("after commit")
                commit_began = threading.Event()

                def commit() -> None:
                    commit_began.set()
                    transaction.commit()

                committed = threading.Timer(0.5, commit)
                committed.start()
                message = queue.get(timeout=5)
                assert message.payload == "after commit"
                # Not before the commit began (the commit's thread may not have marked the
                # transaction inactive yet when the NOTIFY already woke this consumer).
                assert commit_began.is_set()
                committed.join()
                message.ack()
        finally:
            engine.dispose()


def test_transport__first_publish_on_while_another_thread_runs_the_engines_listeners(
    broker_url: str,
) -> None:
    # Before: publish_on registered its listeners on the engine at first use, while another
    # thread was inside that engine's commit listeners (here held there by the application's
    # own listener); when that thread went on, SQLAlchemy raised "deque mutated during
    # iteration" out of its commit.
    engine = _app_engine(broker_url)
    inside, go_on = threading.Event(), threading.Event()

    def applications_listener(_connection: sa.Connection) -> None:
        if threading.current_thread().name == "committer":
            inside.set()
            go_on.wait(10)

    sa.event.listen(engine, "commit", applications_listener)
    errors: list[BaseException] = []

    def commit_in_another_thread() -> None:
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql("SELECT 1")
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    committer = threading.Thread(target=commit_in_another_thread, name="committer")
    committer.start()
    try:
        assert inside.wait(10)
        with kombu.Connection(broker_url, transport_options=SHORT_LEASE) as broker:
            with closing(broker.SimpleQueue("first_use")) as queue:
                with engine.connect() as app, app.begin(), publish_on(app):
                    queue.put("published")
                assert queue.get(timeout=5).payload == "published"
    finally:
        go_on.set()
        committer.join(timeout=10)
        engine.dispose()
    assert errors == []


def test_transport__publish_on_another_database_is_refused(broker_url: str, tmp_path: Any) -> None:
    other = sa.create_engine(f"sqlite:///{tmp_path / 'other.sqlite3'}", poolclass=sa.pool.NullPool)
    with kombu.Connection(broker_url, transport_options=SHORT_LEASE) as broker:
        with other.connect() as app, closing(broker.SimpleQueue("wrong")) as queue:
            with publish_on(app), pytest.raises(TransportError, match="another database"):
                queue.put("x")
            assert queue.qsize() == 0
    other.dispose()


# -- schema -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_schema__postgres_without_migration_says_what_to_run(postgres_url: str) -> None:
    connection = kombu.Connection(
        "linkmq+" + postgres_url, transport_options={"table_prefix": "fresh_"}
    )
    with pytest.raises(SchemaMissingError, match="run `link-mq db upgrade`"):
        connection.connect()


@pytest.mark.postgres
def test_schema__upgrade_is_idempotent_and_concurrent_safe(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        threads = [threading.Thread(target=upgrade, args=(engine, "twice_")) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert upgrade(engine, "twice_") == SCHEMA_REVISION
        assert {"twice_message", "twice_queue"} <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_wakeup__postgres_notify_wakes_a_consumer_long_before_the_poll(
    migrated_postgres_url: str,
) -> None:
    url = "linkmq+" + migrated_postgres_url
    options = {"polling_interval": 30.0}
    with kombu.Connection(url, transport_options=options) as consumer:
        with closing(consumer.SimpleQueue("notified")) as queue:
            with pytest.raises(queue.Empty):
                queue.get(timeout=0.2)  # now waiting on the 30 s poll ceiling
            publisher = threading.Timer(
                0.5, processes.publish_range, args=(url, "notified", 0, 1, spawn.Queue())
            )
            publisher.start()
            started = time.monotonic()
            message = queue.get(timeout=10)
            waited_s = time.monotonic() - started
            publisher.join()
            message.ack()
    assert message.payload == 0
    assert waited_s < 10


def test_transport__publish_on_the_same_sqlite_file_under_another_spelling_is_accepted(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The broker names the file by its absolute path, the application relative to its folder
    monkeypatch.chdir(tmp_path)
    broker_url = f"linkmq+sqlite:///{tmp_path / 'same.sqlite3'}"
    app_engine = sa.create_engine("sqlite:///same.sqlite3", poolclass=sa.pool.NullPool)
    with kombu.Connection(broker_url, transport_options=SHORT_LEASE) as broker:
        with closing(broker.SimpleQueue("same")) as queue:
            with app_engine.begin() as app, publish_on(app):
                queue.put("one file")
            message = queue.get(timeout=5)
            assert message.payload == "one file"
            message.ack()
    app_engine.dispose()
