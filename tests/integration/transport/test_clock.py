"""Whose clock counts: the database server's. A consumer or publisher whose host clock is off
(``time.time()`` shifted in a real child process) neither takes a message another consumer
holds, nor waits for new messages, nor loses them to a time-to-live that ran out on arrival.

Run on the server databases (PostgreSQL, MariaDB); SQLite serves one host, whose clock is the
one every process reads."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import kombu
import pytest
import sqlalchemy as sa

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.db import engine_for
from link_message_queue.monitoring.status import read_status
from link_message_queue.transport import upgrade
from link_message_queue.transport.options import TransportOptions

from ...databases import require_service
from . import processes

spawn = multiprocessing.get_context("spawn")
MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/mysql"
# Short leases keep the tests fast; every clock below is off by more than a lease.
LEASE = {"lease_s": 3.0, "lease_renew_interval_s": 0.5}


@pytest.fixture(scope="module")
def mariadb_broker_url() -> Iterator[str]:
    require_service("MariaDB", 3306)
    name = f"linkmq_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(MARIADB_ADMIN, poolclass=sa.pool.NullPool)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    url = MARIADB_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    engine = engine_for(url, TransportOptions())
    upgrade(engine, "linkmq_")
    engine.dispose()
    try:
        yield f"linkmq+{url}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres), "mariadb"])
def server_broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        return "linkmq+" + str(request.getfixturevalue("migrated_postgres_url"))
    return str(request.getfixturevalue("mariadb_broker_url"))


def _run(target: Any, *args: Any, **kwargs: Any) -> Any:
    child = spawn.Process(target=target, args=args, kwargs=kwargs)
    child.start()
    return child


def test_clock__a_consumer_whose_clock_runs_ahead_never_takes_a_held_message(
    server_broker_url: str,
) -> None:
    queue_name = f"held_{uuid.uuid4().hex[:6]}"
    results = spawn.Queue()
    # Given a live consumer holding a message (it renews its 3 s lease)
    with kombu.Connection(server_broker_url, transport_options=LEASE) as connection:
        with closing(connection.SimpleQueue(queue_name)) as queue:
            queue.put("task")
            held = queue.get(timeout=10)
            # When a consumer whose clock runs 5 s ahead looks for work for 4 s
            child = _run(
                processes.try_to_claim,
                server_broker_url,
                queue_name,
                LEASE,
                results,
                offset_s=5.0,
                wait_s=4.0,
            )
            try:
                stolen = results.get(timeout=60)
            finally:
                child.join(timeout=30)
            held.ack()
    # Then it finds none: the lease runs by the database's clock, not its own
    assert stolen is None


def test_clock__a_consumer_whose_clock_runs_behind_gets_new_messages_at_once(
    server_broker_url: str,
) -> None:
    queue_name = f"late_{uuid.uuid4().hex[:6]}"
    results = spawn.Queue()
    # Given a consumer whose clock runs 8 s behind, listening
    child = _run(
        processes.receive_one_on_shifted_clock, server_broker_url, queue_name, LEASE, -8.0, results
    )
    try:
        assert results.get(timeout=60) == "listening"
        # When a process with the right time publishes
        with kombu.Connection(server_broker_url) as connection:
            with closing(connection.SimpleQueue(queue_name)) as queue:
                queue.put("news")
                published_at = time.monotonic()
        payload, received_at = results.get(timeout=60)
    finally:
        child.join(timeout=30)
    # Then the message arrives without waiting for the consumer's clock to catch up (8 s)
    assert payload == "news"
    assert received_at - published_at < 4.0


@pytest.mark.parametrize("delivery_mode", [1, 2], ids=["transient-batch", "persistent"])
def test_clock__a_publisher_whose_clock_runs_behind_does_not_publish_expired_messages(
    server_broker_url: str, delivery_mode: int
) -> None:
    queue_name = f"ttl_{uuid.uuid4().hex[:6]}"
    with kombu.Connection(server_broker_url) as connection:
        connection.SimpleQueue(queue_name).close()  # declared before the publish
    done = spawn.Queue()
    # Given a publisher whose clock runs 15 s behind sends a message that lives 10 s
    child = _run(
        processes.publish_on_shifted_clock,
        server_broker_url,
        queue_name,
        done,
        offset_s=-15.0,
        expiration_s=10.0,
        delivery_mode=delivery_mode,
    )
    try:
        assert done.get(timeout=60) == "published"
    finally:
        child.join(timeout=30)
    # When a consumer looks right after
    with kombu.Connection(server_broker_url, transport_options=LEASE) as connection:
        with closing(connection.SimpleQueue(queue_name)) as queue:
            message = queue.get(timeout=5)
            message.ack()
    # Then the message is there: its time-to-live counts from the database's now
    assert message.payload == "short-lived"


def test_clock__a_consumer_whose_clock_runs_behind_stays_alive_and_keeps_its_queue(
    server_broker_url: str,
) -> None:
    queue_name = f"kept_{uuid.uuid4().hex[:6]}"
    results = spawn.Queue()
    # Given a consumer whose clock runs 15 s behind, on a queue that expires unused for 5 s
    child = _run(
        processes.consume_on_shifted_clock,
        server_broker_url,
        queue_name,
        LEASE,
        results,
        offset_s=-15.0,
        expires_s=5.0,
        consume_s=30.0,
    )
    try:
        assert results.get(timeout=60) == "consuming"
        with kombu.Connection(server_broker_url) as connection:
            store = connection.default_channel.store
            # When its queue would have expired but for its heartbeats, and another process's
            # cleaner runs
            time.sleep(6.0)
            dropped = store.queues.delete_expired_queues(1000)
            # Then its heartbeats count by the database's clock: its queue is kept
            assert queue_name not in dropped
            assert store.queues.has_queue(queue_name)
            # and status lists it as alive
            deadline = time.monotonic() + 20
            while not any(
                queue_name in consumer.queues
                for consumer in read_status(store.engine, store.tables).consumers
            ):
                assert time.monotonic() < deadline, "the consumer was never listed as alive"
                time.sleep(0.2)
    finally:
        child.terminate()
        child.join(timeout=30)
