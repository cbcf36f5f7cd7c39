"""Exchanges across processes: bindings live in the database, so what one process publishes
reaches the queues any other process bound; queue lifetimes and TTLs are honoured."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from contextlib import closing
from typing import Any

import kombu
import pytest
import sqlalchemy as sa

import link_message_queue  # noqa: F401  (registers linkmq+)

from . import processes

spawn = multiprocessing.get_context("spawn")


def _drain(connection: kombu.Connection, queue: kombu.Queue, timeout_s: float = 1.0) -> list[Any]:
    bodies: list[Any] = []

    def collect(body: Any, message: kombu.Message) -> None:
        bodies.append(body)
        message.ack()

    with kombu.Consumer(connection, [queue], callbacks=[collect], accept=["json"]):
        try:
            while True:
                connection.drain_events(timeout=timeout_s)
        except TimeoutError:
            pass
    return bodies


@pytest.mark.parametrize(
    ("exchange_type", "bindings", "routing_key", "expected"),
    [
        ("fanout", {"f1": "", "f2": ""}, "anything", {"f1", "f2"}),
        ("topic", {"t1": "task.*", "t2": "task.#", "t3": "worker.*"}, "task.sent", {"t1", "t2"}),
        ("direct", {"d1": "a", "d2": "b"}, "b", {"d2"}),
    ],
)
def test_routing__a_binding_made_by_one_process_routes_what_another_publishes(
    broker_url: str,
    exchange_type: str,
    bindings: dict[str, str],
    routing_key: str,
    expected: set[str],
) -> None:
    exchange = kombu.Exchange(f"x_{exchange_type}", type=exchange_type)
    queues = {name: kombu.Queue(name, exchange, routing_key=key) for name, key in bindings.items()}
    with kombu.Connection(broker_url) as binder:
        for queue in queues.values():
            queue(binder.default_channel).declare()

    # Another process, which never declared the queues, publishes.
    done = spawn.Queue()
    publisher = spawn.Process(
        target=processes.publish_to_exchange,
        args=(broker_url, exchange.name, exchange_type, routing_key, done),
    )
    publisher.start()
    assert done.get(timeout=60) == "published"
    publisher.join(timeout=10)

    with kombu.Connection(broker_url) as consumer:
        received = {name for name, queue in queues.items() if _drain(consumer, queue, 0.3)}
    assert received == expected


def test_routing__a_binding_another_process_just_made_routes_the_next_publish(
    broker_url: str,
) -> None:
    # Given a publisher whose last publish to a fanout exchange reached its one queue, and
    # another process, connected, that binds a second queue to the exchange when told
    exchange = kombu.Exchange("x_growing", type="fanout")
    first, second = kombu.Queue("first", exchange), kombu.Queue("second", exchange)
    told, done = spawn.Queue(), spawn.Queue()
    binder = spawn.Process(
        target=processes.bind_when_told,
        args=(broker_url, exchange.name, second.name, told, done),
    )
    binder.start()
    try:
        # (Started and connected first: the bind must follow the first publish closely.)
        assert done.get(timeout=60) == "connected"
        with kombu.Connection(broker_url) as connection:
            first(connection.default_channel).declare()
            producer = connection.Producer(exchange=exchange, serializer="json")
            producer.publish({"n": 1})

            # When the other process binds the second queue, and the publisher publishes
            # right after it
            told.put("bind")
            assert done.get(timeout=60) == "bound"
            producer.publish({"n": 2})

            # Then the second queue got that message (as did the first both)
            assert _drain(connection, second, 0.3) == [{"n": 2}]
            assert _drain(connection, first, 0.3) == [{"n": 1}, {"n": 2}]
    finally:
        binder.join(timeout=10)


def test_routing__publishing_to_an_exchange_without_bindings_writes_nothing(
    broker_url: str,
) -> None:
    with kombu.Connection(broker_url) as connection:
        producer = connection.Producer(exchange=kombu.Exchange("lonely", type="fanout"))
        producer.publish({"n": 1}, declare=[producer.exchange])
    engine = sa.create_engine(broker_url.removeprefix("linkmq+"), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM linkmq_message")).scalar_one() == 0
    engine.dispose()


def test_routing__queue_message_ttl_expires_messages(broker_url: str) -> None:
    queue = kombu.Queue("short_lived_messages", message_ttl=0.3)
    with (
        kombu.Connection(broker_url) as connection,
        closing(connection.SimpleQueue(queue)) as simple,
    ):
        simple.put({"n": 1})
        time.sleep(0.5)
        with pytest.raises(simple.Empty):
            simple.get(timeout=0.3)


def test_routing__unused_queue_expires_with_its_messages_and_bindings(broker_url: str) -> None:
    exchange = kombu.Exchange("expiring_x", type="fanout")
    queue = kombu.Queue("expiring_q", exchange, expires=0.3)
    with kombu.Connection(broker_url) as connection:
        queue(connection.default_channel).declare()
        connection.Producer(exchange=exchange).publish({"n": 1})
        time.sleep(0.5)
        dropped = connection.default_channel.store.queues.delete_expired_queues(1000)
        assert dropped == ["expiring_q"]
        assert not connection.default_channel.store.queues.has_queue("expiring_q")
        assert connection.default_channel.store.bindings.of_exchange("expiring_x") == []
        assert connection.default_channel.store.messages.size("expiring_q") == 0


def test_routing__a_consumed_queue_does_not_expire(broker_url: str) -> None:
    queue = kombu.Queue("kept_alive", expires=0.5)
    options = {"cleanup_interval_s": 0.1, "lease_renew_interval_s": 0.05, "lease_s": 1.0}
    with kombu.Connection(broker_url, transport_options=options) as connection:
        with kombu.Consumer(connection, [queue], callbacks=[lambda body, message: message.ack()]):
            deadline = time.monotonic() + 1.5  # three times the queue's x-expires
            while time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    connection.drain_events(timeout=0.1)
            assert connection.default_channel.store.queues.has_queue("kept_alive")
        # No consumer any more: a cleaner round (this process's keeper or ours) drops it.
        time.sleep(0.7)
        connection.default_channel.store.queues.delete_expired_queues(1000)
        assert not connection.default_channel.store.queues.has_queue("kept_alive")
