"""``send_many``: many calls of one Celery task in one write into the caller's transaction.
Each stored message is the one ``apply_async`` stores (but for its fresh task id), the batch
is one statement, visible exactly when the caller commits and gone when it rolls back, with
one NOTIFY per queue — on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from celery import Celery, signals
from kombu.exceptions import EncodeError

from link_message_queue import send_many
from link_message_queue.transport import TransportError, publish_on

from .test_bulk_publish import _app_engine, _listening, _messages, _statements

MESSAGES = 30


@pytest.fixture
def app(broker_url: str) -> Iterator[Celery]:
    app = Celery("send-many-test", broker=broker_url)
    app.conf.update(
        task_default_queue="bulk",
        task_serializer="json",
        broker_connection_retry_on_startup=False,
    )
    with app.producer_or_acquire() as producer:
        producer.channel  # noqa: B018  (connects, migrates SQLite, outside any transaction)
    engine = _app_engine(broker_url)
    with engine.begin() as connection:  # PostgreSQL's database is the module's: start empty
        connection.execute(sa.text("DELETE FROM linkmq_message"))
    engine.dispose()
    yield app
    app.close()


def _task(app: Celery, **options: Any) -> Any:
    @app.task(name="bulk.add", shared=False, **options)
    def add(a: int, b: float) -> float:
        return a + b

    return add


def _stored(broker_url: str, queue: str) -> list[dict[str, Any]]:
    return [json.loads(payload) for payload, _ in _messages(broker_url, queue)]


def _without_task_id(message: dict[str, Any]) -> dict[str, Any]:
    task_id = message["headers"]["id"]
    assert message["properties"]["correlation_id"] == task_id
    assert message["headers"]["root_id"] == task_id
    headers = {key: value for key, value in message["headers"].items() if key != "id"}
    headers.pop("root_id")
    properties = dict(message["properties"])
    properties.pop("correlation_id")
    return {**message, "headers": headers, "properties": properties}


@pytest.mark.parametrize(
    ("task_options", "call_options"),
    [
        ({}, {}),
        ({}, {"queue": "other", "priority": 5}),
        ({"time_limit": 30, "soft_time_limit": 20, "ignore_result": True}, {}),
    ],
    ids=["defaults", "queue-and-priority", "task-options"],
)
def test_send_many__stores_the_message_apply_async_stores(
    app: Celery, broker_url: str, task_options: dict[str, Any], call_options: dict[str, Any]
) -> None:
    # Given a task and the application's engine
    add = _task(app, **task_options)
    engine = _app_engine(broker_url)
    queue = call_options.get("queue", "bulk")
    # When one call goes through apply_async and one through send_many, each with kwargs
    with engine.begin() as connection, publish_on(connection):
        sent = add.apply_async((1, 2.5), {}, **call_options)
    with engine.begin() as connection:
        ids = send_many(add, [(1, 2.5)], connection, **call_options)
    engine.dispose()
    # Then both stored messages are equal but for the task id
    by_apply_async, by_send_many = _stored(broker_url, queue)
    assert by_apply_async["headers"]["id"] == sent.id
    assert by_send_many["headers"]["id"] == ids[0] != sent.id
    assert _without_task_id(by_send_many) == _without_task_id(by_apply_async)


def test_send_many__follows_task_routes_to_an_exchange_as_apply_async_does(
    app: Celery, broker_url: str
) -> None:
    # A route that names an exchange and a routing key: Celery publishes to that exchange (not
    # the default one), and the queue's binding (Celery made it: exchange and key are the
    # queue's name) carries the message to the queue
    app.conf.task_routes = {
        "bulk.add": {"queue": "routed", "exchange": "routed", "routing_key": "routed"}
    }
    add = _task(app)
    engine = _app_engine(broker_url)
    with engine.begin() as connection, publish_on(connection):
        add.apply_async((1, 2.5))
    with engine.begin() as connection:
        send_many(add, [(1, 2.5)], connection)
    engine.dispose()
    by_apply_async, by_send_many = _stored(broker_url, "routed")
    assert by_send_many["properties"]["delivery_info"] == {
        "exchange": "routed",
        "routing_key": "routed",
    }
    assert _without_task_id(by_send_many) == _without_task_id(by_apply_async)


def test_send_many__sends_the_publish_signals_per_message(app: Celery, broker_url: str) -> None:
    add = _task(app)
    seen: list[tuple[str, str, str, str, str]] = []

    def before(sender: str, headers: dict[str, Any], **kwargs: Any) -> None:
        seen.append(("before", sender, kwargs["exchange"], kwargs["routing_key"], headers["id"]))

    def after(sender: str, headers: dict[str, Any], **kwargs: Any) -> None:
        seen.append(("after", sender, kwargs["exchange"], kwargs["routing_key"], headers["id"]))

    signals.before_task_publish.connect(before)
    signals.after_task_publish.connect(after)
    engine = _app_engine(broker_url)
    try:
        with engine.begin() as connection:
            ids = send_many(add, [(1, 2.0), (3, 4.0)], connection)
    finally:
        signals.before_task_publish.disconnect(before)
        signals.after_task_publish.disconnect(after)
        engine.dispose()
    assert seen == [
        (stage, "bulk.add", "", "bulk", task_id) for task_id in ids for stage in ("before", "after")
    ]


def test_send_many__kwargs_and_arguments_that_saferepr_shortens(
    app: Celery, broker_url: str
) -> None:
    add = _task(app)
    engine = _app_engine(broker_url)
    long_text = "x" * 5000  # argsrepr is cut at Celery's argsrepr_maxsize
    with engine.begin() as connection, publish_on(connection):
        add.apply_async((long_text,), {"b": None})
    with engine.begin() as connection:
        send_many(add, [(long_text,)], connection, kwargs={"b": None})
    engine.dispose()
    by_apply_async, by_send_many = _stored(broker_url, "bulk")
    assert _without_task_id(by_send_many) == _without_task_id(by_apply_async)
    assert len(by_send_many["headers"]["argsrepr"]) < len(long_text)


def test_send_many__one_write_visible_when_the_caller_commits(app: Celery, broker_url: str) -> None:
    add = _task(app)
    engine = _app_engine(broker_url)
    with engine.begin() as connection:
        send_many(add, [(-1, 0.0)], connection)  # declares the queue, reads its settings
    with engine.connect() as connection:
        transaction = connection.begin()
        with _statements(engine) as sent:
            ids = send_many(add, [(number, 0.0) for number in range(MESSAGES)], connection)
        # One statement (SQLite: one multi-row INSERT; PostgreSQL: the clock and NOTIFY
        # statement, then one COPY)
        assert len(sent) == 1, sent
        assert len(_messages(broker_url, "bulk")) == 1  # the block's: not committed yet
        transaction.commit()
    engine.dispose()
    stored = _stored(broker_url, "bulk")[1:]
    assert [message["headers"]["id"] for message in stored] == ids
    assert len(set(ids)) == MESSAGES
    bodies = [json.loads(message["body"]) for message in stored]
    assert [body[0] for body in bodies] == [[number, 0.0] for number in range(MESSAGES)]


def test_send_many__a_rollback_drops_every_message(app: Celery, broker_url: str) -> None:
    add = _task(app)
    engine = _app_engine(broker_url)
    with engine.connect() as connection:
        transaction = connection.begin()
        send_many(add, [(number, 0.0) for number in range(MESSAGES)], connection)
        transaction.rollback()
    engine.dispose()
    assert _messages(broker_url, "bulk") == []


def test_send_many__a_call_that_raises_writes_none_of_its_messages(
    app: Celery, broker_url: str
) -> None:
    # Given a batch whose third call cannot be serialized (JSON)
    add = _task(app)
    engine = _app_engine(broker_url)
    calls = [(1, 0.0), (2, 0.0), (object(), 0.0), (4, 0.0)]
    # When send_many raises, and the caller catches the error, queues another batch and commits
    with engine.begin() as connection:
        with pytest.raises(EncodeError):
            send_many(add, calls, connection)
        ids = send_many(add, [(5, 0.0)], connection)
    engine.dispose()
    # Then none of the failed call's messages were committed: only the later batch's
    assert [message["headers"]["id"] for message in _stored(broker_url, "bulk")] == ids


def test_send_many__raising_inside_publish_on_keeps_the_blocks_other_messages(
    app: Celery, broker_url: str
) -> None:
    # Given a publish_on block with a message published before send_many and one after it
    add = _task(app)
    engine = _app_engine(broker_url)
    with engine.begin() as connection, publish_on(connection):
        before = add.apply_async((0, 0.0))
        # When send_many raises inside the block, and the caller goes on and commits
        with pytest.raises(EncodeError):
            send_many(add, [(1, 0.0), (object(), 0.0)], connection)
        after = add.apply_async((3, 0.0))
    engine.dispose()
    # Then the block's own messages are committed, none of send_many's
    stored = [message["headers"]["id"] for message in _stored(broker_url, "bulk")]
    assert stored == [before.id, after.id]


@pytest.mark.postgres
def test_send_many__one_notify_on_commit(migrated_postgres_url: str) -> None:
    broker_url = "linkmq+" + migrated_postgres_url
    app = Celery("send-many-notify", broker=broker_url)
    app.conf.update(task_default_queue="bulk", broker_connection_retry_on_startup=False)
    add = _task(app)
    add.delay(0, 0.0)  # connects and declares the queue
    engine = _app_engine(broker_url)
    with _listening(migrated_postgres_url) as listener:
        list(listener.notifies(timeout=0.5))  # the warm-up's signal
        with engine.begin() as connection:
            send_many(add, [(number, 0.0) for number in range(MESSAGES)], connection)
            assert list(listener.notifies(timeout=0.2)) == []  # nothing before the commit
        signalled = [notify.payload for notify in listener.notifies(timeout=2)]
    engine.dispose()
    app.close()
    assert signalled == ["bulk"]


def test_send_many__refuses_what_it_cannot_send(app: Celery, broker_url: str) -> None:
    add = _task(app)
    engine = _app_engine(broker_url)
    with engine.connect() as connection:
        # Arguments the task does not take: apply_async's TypeError
        with pytest.raises(TypeError):
            send_many(add, [(1, 2, 3)], connection)

        # Per-message timing from the task's options
        @app.task(name="bulk.delayed", shared=False, expires=60)
        def delayed() -> None:
            pass

        with pytest.raises(ValueError, match="expires"):
            send_many(delayed, [()], connection)
    engine.dispose()
    assert _messages(broker_url, "bulk") == []


@pytest.mark.parametrize(
    ("arguments", "kwargs", "refused"),
    [
        ([(1, 2.0), "ab"], None, r"arguments\[1\] must be a list or tuple.*not str"),
        ([{"a": 1, "b": 2.0}], None, r"arguments\[0\] must be a list or tuple.*not dict"),
        ([(1, 2.0), 3], None, r"arguments\[1\] must be a list or tuple.*not int"),
        ("ab", None, "not str"),
        ([(1,)], [("b", 2.0)], "kwargs must be a mapping"),
    ],
    ids=["a-string-item", "a-dict-item", "an-int-item", "a-string", "kwargs-pairs"],
)
def test_send_many__refuses_an_item_that_is_not_an_argument_list(
    app: Celery, broker_url: str, arguments: Any, kwargs: Any, refused: str
) -> None:
    # Given items apply_async refuses as args ("task args must be a list or tuple"), which
    # tuple() would turn into other calls: a string's characters, a dict's keys
    add = _task(app)
    engine = _app_engine(broker_url)
    with engine.begin() as connection:
        # When send_many is given them, even after valid items, and the caller commits
        with pytest.raises(TypeError, match=refused):
            send_many(add, arguments, connection, kwargs=kwargs)
    engine.dispose()
    # Then it raised before writing anything
    assert _messages(broker_url, "bulk") == []


def test_send_many__refuses_a_broker_other_than_linkmq(sqlite_url: str) -> None:
    app = Celery("send-many-memory", broker="memory://")
    add = _task(app)
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as connection, pytest.raises(TransportError, match="linkmq"):
        send_many(add, [(1, 2.0)], connection)
    engine.dispose()
    app.close()


def test_send_many__eager_mode_runs_each_call(sqlite_url: str) -> None:
    app = Celery("send-many-eager", broker="memory://")
    app.conf.task_always_eager = True
    calls: list[tuple[int, float]] = []

    @app.task(name="bulk.record", shared=False)
    def record(a: int, b: float) -> None:
        calls.append((a, b))

    engine = sa.create_engine(sqlite_url)
    with engine.connect() as connection:
        ids = send_many(record, [(1, 2.0), (3, 4.0)], connection)
    engine.dispose()
    assert calls == [(1, 2.0), (3, 4.0)]
    assert len(set(ids)) == 2
