"""A database connection lost under the process's shared held connections (found by the
breaker): the error is the one kombu reconnects and retries on, and closing still gives back
everything the process held — on a real PostgreSQL."""

from __future__ import annotations

import os
import socket
import time

import kombu
import pytest
import sqlalchemy as sa

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.transport.put_connection import PutConnection
from link_message_queue.transport.store.common import CommonMessages
from link_message_queue.transport.transport import Transport

pytestmark = pytest.mark.postgres
RETRY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def _held_puts(connection: kombu.Connection) -> PutConnection:
    transport = connection.transport
    assert isinstance(transport, Transport)
    messages = transport.store.messages
    assert isinstance(messages, CommonMessages)
    puts = messages._puts
    assert puts is not None  # held since the first publish
    assert puts._cursor is not None
    return puts


def _reset(puts: PutConnection) -> None:
    """Cut the held connection's socket under it, as a network blip does: the server sends
    nothing, the next statement finds the connection closed."""
    fd = puts._cursor.connection.pgconn.socket
    with socket.socket(fileno=os.dup(fd)) as shared:
        shared.shutdown(socket.SHUT_RDWR)


def _rows(database_url: str, queue: str) -> int:
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    sa.text("SELECT count(*) FROM linkmq_message WHERE queue = :queue"),
                    {"queue": queue},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_routed_publish_on_a_reset_connection_is_retried_by_kombu(
    migrated_postgres_url: str,
) -> None:
    fanout = kombu.Exchange("lost-fanout", type="fanout")
    queue = kombu.Queue("lost-fanout-queue", exchange=fanout)
    with kombu.Connection(f"linkmq+{migrated_postgres_url}") as connection:
        queue(connection.default_channel).declare()
        producer = kombu.Producer(connection)
        producer.publish({"n": 0}, routing_key=queue.name)  # holds the put connection
        # Given the held connection reset before the routed publish's first (prepared) read
        _reset(_held_puts(connection))

        # When the routed publish runs with kombu's retry
        producer.publish({"n": 1}, exchange=fanout, retry=True, retry_policy=RETRY)

    # Then the lost connection was an error kombu retries (a generic DatabaseError was not):
    # both messages are in the queue
    assert _rows(migrated_postgres_url, queue.name) == 2


def _listening(database_url: str) -> int:
    """Backends of the database that last ran LISTEN (pooled idle connections stay: normal)."""
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND query LIKE 'LISTEN %'"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_closing_after_the_put_connection_died_still_stops_the_listener(
    migrated_postgres_url: str,
) -> None:
    url = f"linkmq+{migrated_postgres_url}"
    options = {"publish_synchronous_commit": "off"}  # close() must restore it on a live one
    queue = kombu.Queue("lost-close", routing_key="lost-close")
    connection = kombu.Connection(url, transport_options=options)
    with connection:
        kombu.Producer(connection).publish({"n": 1}, routing_key=queue.name, declare=[queue])
        with connection.Consumer([queue], callbacks=[lambda body, message: message.ack()]):
            connection.drain_events(timeout=30)  # the LISTEN connection is up
        # Given the put connection's socket cut (its settings cannot be restored)
        _reset(_held_puts(connection))
    # When the last kombu connection closed: then the LISTEN connection is gone (the thread
    # name is not asserted: other tests' transports in this process may listen elsewhere)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _listening(migrated_postgres_url):
        time.sleep(0.1)
    assert _listening(migrated_postgres_url) == 0
