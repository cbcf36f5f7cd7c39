"""Many kombu connections in one process share its held database connections (one LISTEN, one
claim and one put connection per process and database) instead of pinning pool slots each, and
one closing (or a fork) does not take them from the others — on a real SQLite file and a real
PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import kombu
import pytest
import sqlalchemy as sa
from celery import Celery

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.transport import claim_connection
from link_message_queue.transport.store.postgres import PostgresMessages
from link_message_queue.transport.transport import Transport

fork = multiprocessing.get_context("fork")
CONNECTIONS = 20
# The process's held connections on PostgreSQL with psycopg: LISTEN, claims, single publishes.
HELD_PER_PROCESS = 3
WAIT_S = 60.0


def _backends(database_url: str) -> tuple[int, int]:
    """Server backends connected to ``database_url``'s database (other than the one asking),
    and how many of them last ran LISTEN."""
    admin = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as connection:
            row = connection.execute(
                sa.text(
                    "SELECT count(*), count(*) FILTER (WHERE query LIKE 'LISTEN %') "
                    "FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).one()
    finally:
        admin.dispose()
    return int(row[0]), int(row[1])


def _transport(connection: kombu.Connection) -> Transport:
    transport = connection.transport
    assert isinstance(transport, Transport)
    return transport


def _claims_of(connection: kombu.Connection) -> claim_connection.ClaimConnection:
    messages = _transport(connection).store.messages
    assert isinstance(messages, PostgresMessages)
    claims = messages._claims
    assert claims is not None  # held since the connection's first claim
    return claims


def _consume_one(connection: kombu.Connection, queue: kombu.Queue) -> Any:
    received: list[Any] = []

    def on_message(body: Any, message: kombu.Message) -> None:
        received.append(body)
        message.ack()

    with kombu.Consumer(connection, [queue], callbacks=[on_message]):
        while not received:
            connection.drain_events(timeout=WAIT_S)
    return received[0]


def test_many_kombu_connections_in_one_process_share_its_held_connections(
    broker_url: str,
) -> None:
    # Flower's threads, a web app's producer pool, `celery inspect` in threads: each kombu
    # connection held a LISTEN and a put connection of its own, so 8 of them ran the engine's
    # pool (5 + 10 overflow) dry and the rest hung in the pool's checkout.
    app = Celery("shared-connections", broker=broker_url)
    all_open = threading.Barrier(CONNECTIONS + 1, timeout=WAIT_S * 2)
    may_close = threading.Barrier(CONNECTIONS + 1, timeout=WAIT_S * 2)
    delivered: list[int] = []
    failures: list[BaseException] = []

    def one_connection(number: int) -> None:
        try:
            queue = kombu.Queue(f"shared-{number}", routing_key=f"shared-{number}")
            with app.connection_for_write() as connection:
                kombu.Producer(connection).publish(
                    {"n": number}, routing_key=queue.routing_key, declare=[queue]
                )
                delivered.append(_consume_one(connection, queue)["n"])
                all_open.wait()
                may_close.wait()
        except BaseException as exc:
            failures.append(exc)
            all_open.abort()
            may_close.abort()

    threads = [
        threading.Thread(target=one_connection, args=(number,), daemon=True)
        for number in range(CONNECTIONS)
    ]
    for thread in threads:
        thread.start()
    try:
        all_open.wait()
        backends = (
            _backends(broker_url.removeprefix("linkmq+"))
            if broker_url.startswith("linkmq+postgresql")
            else None
        )
        may_close.wait()
    except threading.BrokenBarrierError:
        backends = None
    for thread in threads:
        thread.join(timeout=WAIT_S)

    assert failures == []
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(delivered) == list(range(CONNECTIONS))
    if backends is not None:
        connected, listening = backends
        pool_size = app.connection_for_write().transport.store.engine.pool.size()
        # The pool keeps at most pool_size idle connections; the held ones are checked out.
        assert connected <= pool_size + HELD_PER_PROCESS
        assert listening == 1


@pytest.mark.postgres
def test_closing_one_kombu_connection_leaves_the_shared_claim_connection_to_the_others(
    migrated_postgres_url: str,
) -> None:
    url = f"linkmq+{migrated_postgres_url}"
    first_queue = kombu.Queue("close-first", routing_key="close-first")
    second_queue = kombu.Queue("close-second", routing_key="close-second")
    with kombu.Connection(url) as first, kombu.Connection(url) as second:
        for connection, queue in ((first, first_queue), (second, second_queue)):
            kombu.Producer(connection).publish({"n": 1}, routing_key=queue.name, declare=[queue])
            assert _consume_one(connection, queue) == {"n": 1}
        claims = _claims_of(second)
        assert _claims_of(first) is claims  # one per process
        held = claims._held
        assert held is not None

        first.close()

        # The second's claims still run on the same held connection, not on one checked out
        # again after the first closed it under them.
        assert claims._held is held
        kombu.Producer(second).publish({"n": 2}, routing_key=second_queue.name)
        assert _consume_one(second, second_queue) == {"n": 2}
        assert _claims_of(second) is claims
        assert claims._held is held
    # The last one closed: given back.
    assert claims._held is None


def _in_forked_child(url: str, parent_claims: Any, results: Any) -> None:
    engine = parent_claims["store"].engine  # the parent's engine, as a child finds it
    # Asked for the parent's engine, a child gets a claim connection of its own (never used
    # here, so the engine it would run on does not matter).
    mine = claim_connection.claim_connection_for(engine, engine)
    queue = kombu.Queue("forked-child", routing_key="forked-child")
    with kombu.Connection(url) as connection:
        body = _consume_one(connection, queue)
    results.put((mine is parent_claims["claims"], body))
    claim_connection.let_go(engine, mine)


@pytest.mark.postgres
def test_a_forked_child_starts_without_its_parents_shared_connections(
    migrated_postgres_url: str,
) -> None:
    url = f"linkmq+{migrated_postgres_url}"
    parent_queue = kombu.Queue("forked-parent", routing_key="forked-parent")
    child_queue = kombu.Queue("forked-child", routing_key="forked-child")
    with kombu.Connection(url) as connection:
        producer = kombu.Producer(connection)
        producer.publish({"n": 1}, routing_key=parent_queue.name, declare=[parent_queue])
        assert _consume_one(connection, parent_queue) == {"n": 1}
        claims = _claims_of(connection)
        held = claims._held
        producer.publish({"n": 2}, routing_key=child_queue.name, declare=[child_queue])

        results = fork.Queue()
        inherited = {"store": _transport(connection).store, "claims": claims}
        child = fork.Process(target=_in_forked_child, args=(url, inherited, results))
        child.start()
        got_parents, child_body = results.get(timeout=WAIT_S)
        child.join(timeout=WAIT_S)

        # The parent's held connection is untouched by the child's use and exit.
        producer.publish({"n": 3}, routing_key=parent_queue.name)
        assert _consume_one(connection, parent_queue) == {"n": 3}
        assert claims._held is held

    assert not got_parents  # the child made its own, not the parent's stale entry
    assert child_body == {"n": 2}
    assert child.exitcode == 0
