"""Publishing: the messages of one ``publish_on`` block are one write into the caller's
transaction (visible exactly when it commits, gone when it rolls back or the block raises,
written before a commit inside the block), with one wake-up per queue; outside a block, a
channel publishes on a connection of its own, without a pool checkout per message — on a
real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import contextvars
import json
import multiprocessing
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any

import kombu
import psycopg
import pytest
import sqlalchemy as sa
from celery import Celery, group
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.transport import publish_on
from link_message_queue.transport.doorbell import doorbell_directory

fork = multiprocessing.get_context("fork")
MESSAGES = 20


def _app_engine(broker_url: str) -> sa.Engine:
    return sa.create_engine(broker_url.removeprefix("linkmq+"), poolclass=sa.pool.NullPool)


def _messages(broker_url: str, queue: str) -> list[tuple[str, float]]:
    """(payload, created_at) of ``queue``'s committed rows, in insertion order, as another
    connection sees them."""
    engine = _app_engine(broker_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT payload, created_at FROM linkmq_message "
                    "WHERE queue = :queue ORDER BY id"
                ),
                {"queue": queue},
            )
            return [(row.payload, row.created_at) for row in rows]
    finally:
        engine.dispose()


@contextmanager
def _statements(engine: sa.Engine) -> Iterator[list[str]]:
    """The SQL statements ``engine``'s connections send while the block runs."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def broker(broker_url: str) -> Iterator[kombu.Connection]:
    with kombu.Connection(broker_url) as connection:
        yield connection


def _declared(broker: kombu.Connection, name: str) -> kombu.SimpleQueue:
    queue = broker.SimpleQueue(name)
    queue.put("warm-up")  # declares the queue and reads its settings outside any block
    queue.get(timeout=5).ack()
    return queue


def test_publish_on__the_blocks_messages_are_one_write(
    broker: kombu.Connection, broker_url: str
) -> None:
    # Given a declared queue and the application's own engine
    engine = _app_engine(broker_url)
    with closing(_declared(broker, "bulk")) as queue:
        # When the block publishes MESSAGES messages in the caller's transaction
        with _statements(engine) as sent, engine.begin() as app, publish_on(app):
            for number in range(MESSAGES):
                queue.put(number)
    engine.dispose()
    # Then one statement reached the database (SQLite: one multi-row INSERT; PostgreSQL:
    # the batch's opening statement, then one COPY), not one per message
    assert len(sent) == 1, sent
    messages = _messages(broker_url, "bulk")
    assert len(messages) == MESSAGES
    # … and every row carries the one "now" of that single write, in publish order
    assert len({created_at for _, created_at in messages}) == 1
    payloads = [json.loads(payload) for payload, _ in messages]
    assert [message["body"] for message in payloads] == [str(number) for number in range(MESSAGES)]


def test_publish_on__messages_are_visible_exactly_when_the_caller_commits(
    broker: kombu.Connection, broker_url: str
) -> None:
    engine = _app_engine(broker_url)
    with closing(_declared(broker, "visible")) as queue, engine.connect() as app:
        transaction = app.begin()
        with publish_on(app):
            for number in range(MESSAGES):
                queue.put(number)
            assert _messages(broker_url, "visible") == []
        # The block is over: written into the transaction, still not committed
        assert _messages(broker_url, "visible") == []
        transaction.commit()
        assert len(_messages(broker_url, "visible")) == MESSAGES
    engine.dispose()


def test_publish_on__a_rollback_drops_the_blocks_messages(
    broker: kombu.Connection, broker_url: str
) -> None:
    engine = _app_engine(broker_url)
    with closing(_declared(broker, "rolled")) as queue, engine.connect() as app:
        transaction = app.begin()
        with publish_on(app):
            for number in range(MESSAGES):
                queue.put(number)
            transaction.rollback()  # inside the block: nothing is written afterwards
        transaction = app.begin()
        with publish_on(app):
            queue.put("after the block")
        transaction.rollback()  # after the block: the written rows are undone
    engine.dispose()
    assert _messages(broker_url, "rolled") == []


def _publish_then_fail(app: sa.Connection, queue: kombu.SimpleQueue) -> None:
    with publish_on(app):
        queue.put("with the order")
        raise RuntimeError("the block failed")


def test_publish_on__after_an_exception_out_of_the_block_the_transaction_decides(
    broker: kombu.Connection, broker_url: str
) -> None:
    engine = _app_engine(broker_url)
    with closing(_declared(broker, "raised")) as queue, engine.begin() as app:
        app.execute(sa.text("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY)"))
        with pytest.raises(RuntimeError, match="the block failed"):
            _publish_then_fail(app, queue)
        # The caller handled the failure and commits the rest of its work
        app.execute(sa.text("INSERT INTO orders (id) VALUES (1)"))
    with engine.begin() as app:
        assert app.execute(sa.text("SELECT count(*) FROM orders")).scalar_one() == 1
        app.execute(sa.text("DROP TABLE orders"))
    # The message commits with the order it was published beside (an outbox never holds one
    # without the other); a block whose exception rolls the transaction back leaves neither.
    bodies = [json.loads(payload)["body"] for payload, _ in _messages(broker_url, "raised")]
    assert bodies == ["with the order"]
    with pytest.raises(RuntimeError), engine.begin() as app:
        _publish_then_fail(app, queue)
    engine.dispose()
    assert len(_messages(broker_url, "raised")) == 1


def test_publish_on__a_commit_inside_the_block_writes_the_messages_first(
    broker: kombu.Connection, broker_url: str
) -> None:
    engine = _app_engine(broker_url)
    with closing(_declared(broker, "inside")) as queue:
        # A connection without a transaction: the first publish begins one, as a
        # statement would, so that commit() has something to commit
        with engine.connect() as app, publish_on(app):
            queue.put("committed")
            app.commit()
            assert len(_messages(broker_url, "inside")) == 1
            queue.put("rolled back")
            app.rollback()
        # A Session committing inside the block
        with Session(engine) as session, publish_on(session):
            queue.put("session")
            session.commit()
            assert len(_messages(broker_url, "inside")) == 2
    engine.dispose()
    bodies = [json.loads(payload)["body"] for payload, _ in _messages(broker_url, "inside")]
    assert bodies == ["committed", "session"]


def test_publish_on__a_rollback_to_a_savepoint_drops_only_what_it_covers(
    broker: kombu.Connection, broker_url: str
) -> None:
    engine = _app_engine(broker_url)
    with closing(_declared(broker, "savepoint")) as queue:
        with engine.begin() as app, publish_on(app):
            queue.put("before")
            savepoint = app.begin_nested()
            queue.put("inside")
            savepoint.rollback()
            queue.put("after")
    engine.dispose()
    bodies = [json.loads(payload)["body"] for payload, _ in _messages(broker_url, "savepoint")]
    assert bodies == ["before", "after"]


def test_publish_on__size_inside_the_block_counts_the_blocks_messages(
    broker: kombu.Connection, broker_url: str
) -> None:
    engine = _app_engine(broker_url)
    with closing(_declared(broker, "counted")) as queue, engine.begin() as app, publish_on(app):
        for number in range(MESSAGES):
            queue.put(number)
        assert queue.qsize() == MESSAGES
        app.rollback()
    engine.dispose()


def test_publish_on__a_celery_group_lands_whole_in_one_write(broker_url: str) -> None:
    app = Celery("bulk-publish-test", broker=broker_url)
    app.conf.update(task_default_queue="grouped", broker_connection_retry_on_startup=False)
    app.send_task("bulk.work", args=(-1,))  # connects and declares the queue
    engine = _app_engine(broker_url)
    tasks = group(app.signature("bulk.work", args=(number,)) for number in range(MESSAGES))
    with _statements(engine) as sent, engine.begin() as connection, publish_on(connection):
        tasks.apply_async()
    engine.dispose()
    app.close()
    assert len(sent) == 1, sent
    messages = _messages(broker_url, "grouped")
    assert len(messages) == MESSAGES + 1
    assert len({created_at for _, created_at in messages[1:]}) == 1


@contextmanager
def _listening(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection that LISTENs to the queue's NOTIFY channel (``linkmq_message``)."""
    listener = psycopg.connect(
        make_url(database_url).set(drivername="postgresql").render_as_string(False),
        autocommit=True,
    )
    try:
        listener.execute('LISTEN "linkmq_message"')
        yield listener
    finally:
        listener.close()


@pytest.mark.postgres
def test_publish_on__one_notify_per_queue_on_commit(migrated_postgres_url: str) -> None:
    broker_url = "linkmq+" + migrated_postgres_url
    engine = _app_engine(broker_url)
    with _listening(migrated_postgres_url) as listener:
        with kombu.Connection(broker_url) as broker:
            orders, invoices = _declared(broker, "orders"), _declared(broker, "invoices")
            list(listener.notifies(timeout=0.5))  # the warm-ups' signals
            with engine.begin() as app, publish_on(app):
                for number in range(MESSAGES):
                    orders.put(number)
                    invoices.put(number)
                assert list(listener.notifies(timeout=0.2)) == []  # nothing before the commit
            signalled = [n.payload for n in listener.notifies(timeout=2)]
            orders.close()
            invoices.close()
    engine.dispose()
    assert sorted(signalled) == ["invoices", "orders"]


def _commit_after_the_block(engine: sa.Engine, publish: Callable[[], None]) -> None:
    with engine.begin() as app, publish_on(app):
        publish()


def _commit_inside_the_block(engine: sa.Engine, publish: Callable[[], None]) -> None:
    with engine.connect() as app, publish_on(app):
        publish()
        app.commit()


@pytest.mark.parametrize(
    "commit", [_commit_after_the_block, _commit_inside_the_block], ids=["after", "inside"]
)
def test_publish_on__one_ring_per_queue_on_commit(
    sqlite_url: str, commit: Callable[[sa.Engine, Callable[[], None]], None]
) -> None:
    broker_url = "linkmq+" + sqlite_url
    directory = doorbell_directory(str(make_url(sqlite_url).database), "linkmq_")
    assert directory is not None
    engine = sa.create_engine(sqlite_url)
    with kombu.Connection(broker_url) as broker:
        orders, invoices = _declared(broker, "orders"), _declared(broker, "invoices")
        time.sleep(0.1)  # past the spacing of the warm-ups' rings (polling_interval_min_s)
        directory.mkdir(mode=0o700, exist_ok=True)
        listening = directory / "999999999-listener"
        with closing(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)) as listener:
            listener.bind(str(listening))
            listener.settimeout(0.5)

            def publish() -> None:
                for number in range(MESSAGES):
                    orders.put(number)
                    invoices.put(number)

            commit(engine, publish)
            rung = []
            while True:
                try:
                    rung.append(listener.recv(1024))
                except TimeoutError:
                    break
        listening.unlink()
        orders.close()
        invoices.close()
    engine.dispose()
    assert sorted(rung) == [b"invoices", b"orders"]
    assert len(_messages(broker_url, "orders")) == MESSAGES


# -- outside a block ------------------------------------------------------------------------


def test_publish__no_pool_checkout_per_message(broker: kombu.Connection, broker_url: str) -> None:
    queue = _declared(broker, "held")
    engine = broker.transport.store.engine
    checkouts: list[object] = []

    def record(*_: Any) -> None:
        checkouts.append(object())

    event.listen(engine, "checkout", record)
    try:
        for number in range(MESSAGES):
            queue.put(number)
    finally:
        event.remove(engine, "checkout", record)
    queue.close()
    assert len(checkouts) == 0
    assert len(_messages(broker_url, "held")) == MESSAGES


@pytest.mark.postgres
def test_publish__a_lost_connection_is_replaced_and_the_publish_retried(
    migrated_postgres_url: str,
) -> None:
    broker_url = "linkmq+" + migrated_postgres_url
    admin = sa.create_engine(migrated_postgres_url, poolclass=sa.pool.NullPool)
    with kombu.Connection(broker_url) as broker:
        producer = broker.Producer()
        producer.publish("first", routing_key="lost", declare=[kombu.Queue("lost")])
        # The server ends every connection of the publisher (a restart, a fail-over)
        with admin.connect() as connection:
            killed = connection.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        assert killed >= 1
        producer.publish("second", routing_key="lost", retry=True)
        producer.publish("third", routing_key="lost")
    admin.dispose()
    bodies = [json.loads(payload)["body"] for payload, _ in _messages(broker_url, "lost")]
    assert bodies == ["first", "second", "third"]


def _publish_in_child(broker: kombu.Connection) -> None:
    broker.SimpleQueue("forked").put("child")


def test_publish__a_forked_child_leaves_its_parents_connection_alone(
    broker: kombu.Connection, broker_url: str
) -> None:
    queue = _declared(broker, "forked")
    queue.put("parent before")
    child = fork.Process(target=_publish_in_child, args=(broker,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    time.sleep(0.2)  # a child that closed the parent's socket would have done so by now
    queue.put("parent after")
    queue.close()
    bodies = sorted(json.loads(payload)["body"] for payload, _ in _messages(broker_url, "forked"))
    assert bodies == ["child", "parent after", "parent before"]


def test_publish_on__a_session_keeps_publishing_after_it_commits_and_may_begin_inside(
    broker: kombu.Connection, broker_url: str
) -> None:
    engine = _app_engine(broker_url)
    with closing(_declared(broker, "session_twice")) as queue:
        # A Session that commits inside the block, then publishes again and commits again
        with Session(engine) as session, publish_on(session):
            queue.put("first")
            session.commit()
            queue.put("second")
            session.commit()
        # and the usual `with session.begin()` inside the block
        with Session(engine) as session, publish_on(session):
            with session.begin():
                queue.put("third")
            with session.begin():
                queue.put("rolled back")
                session.rollback()
    engine.dispose()
    bodies = [json.loads(payload)["body"] for payload, _ in _messages(broker_url, "session_twice")]
    assert bodies == ["first", "second", "third"]


def test_publish_on__a_publish_from_a_copied_context_after_the_block_is_never_lost(
    broker: kombu.Connection, broker_url: str
) -> None:
    engine = _app_engine(broker_url)
    with closing(_declared(broker, "late")) as queue, engine.connect() as app:
        # A task started inside the block copies its context (asyncio.create_task, to_thread)
        with publish_on(app):
            queue.put("inside")
            late = contextvars.copy_context()
        app.commit()
        # and publishes after the block ended, on the connection the application keeps open:
        # the message goes into that connection's transaction, as inside the block
        late.run(queue.put, "after the block")
        app.commit()
    engine.dispose()
    bodies = [json.loads(payload)["body"] for payload, _ in _messages(broker_url, "late")]
    assert bodies == ["inside", "after the block"]


@pytest.mark.postgres
def test_publish__a_refused_row_raises_sqlalchemys_error_and_the_next_publish_goes_through(
    migrated_postgres_url: str,
) -> None:
    broker_url = "linkmq+" + migrated_postgres_url
    # A rule of the application's DBA that the message table enforces (the module's database:
    # dropped again at the end)
    engine = sa.create_engine(migrated_postgres_url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "ALTER TABLE linkmq_message "
            "ADD CONSTRAINT no_poison CHECK (strpos(payload, 'poison') = 0)"
        )
    try:
        with kombu.Connection(broker_url) as broker:
            # Given a queue, published to once (the channel holds its connection and has
            # prepared its statement)
            queue = _declared(broker, "refused")
            # When the database refuses a message
            with pytest.raises(sa.exc.DBAPIError) as raised:
                queue.put("poison")
            # Then the error is SQLAlchemy's for the driver's (not a connection error: kombu
            # must not retry it), and the channel publishes on afterwards
            assert not isinstance(raised.value, sa.exc.OperationalError)
            assert not raised.value.connection_invalidated
            queue.put("after")
            queue.close()
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE linkmq_message DROP CONSTRAINT no_poison")
        engine.dispose()
    bodies = [json.loads(payload)["body"] for payload, _ in _messages(broker_url, "refused")]
    assert bodies == ["after"]


@pytest.mark.postgres
def test_publish_on__a_connection_lost_in_the_block_raises_the_drivers_error(
    migrated_postgres_url: str,
) -> None:
    # The server ends the caller's connection while the block publishes: the caller must see
    # the driver's OperationalError (which it may retry), not a PendingRollbackError raised by
    # a rollback listener reading the invalidated connection.
    broker_url = f"linkmq+{migrated_postgres_url}"
    engine = _app_engine(broker_url)
    with (
        kombu.Connection(broker_url) as broker,
        closing(_declared(broker, "lost-in-block")) as queue,
    ):

        def publish_on_a_killed_connection() -> None:
            with engine.begin() as app:
                pid = app.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
                with engine.connect() as admin:
                    admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                with publish_on(app):
                    queue.put("lost")

        with pytest.raises(sa.exc.OperationalError):
            publish_on_a_killed_connection()
    engine.dispose()
    assert _messages(broker_url, "lost-in-block") == []
