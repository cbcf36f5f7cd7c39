"""The transport option ``publish_synchronous_commit`` sets PostgreSQL's ``synchronous_commit``
for the transport's own single publishes only (the held put connection, and the publish that
goes through the pool when that one is busy), never for publishes in the caller's transaction,
claims or acks, and never for a pooled connection the application gets afterwards — on a real
PostgreSQL, observed by a trigger that records each write's ``current_setting``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kombu
import pytest
import sqlalchemy as sa

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.db import queue_tables
from link_message_queue.transport import TransportOptionError, publish_on
from link_message_queue.transport.options import TransportOptions
from link_message_queue.transport.store import MessageStore

pytestmark = pytest.mark.postgres
WAIT_S = 60.0


@pytest.fixture(scope="module")
def observed_url(migrated_postgres_url: str) -> str:
    """The module's migrated database, where every write to the message table records its
    operation, queue and the transaction's ``synchronous_commit`` in ``seen``."""
    engine = sa.create_engine(migrated_postgres_url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(
            sa.text("CREATE TABLE seen (id SERIAL PRIMARY KEY, op TEXT, queue TEXT, setting TEXT)")
        )
        connection.execute(
            sa.text(
                "CREATE FUNCTION record_seen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "INSERT INTO seen (op, queue, setting) VALUES (TG_OP, "
                "COALESCE(NEW.queue, OLD.queue), current_setting('synchronous_commit')); "
                "RETURN NULL; END $$"
            )
        )
        connection.execute(
            sa.text(
                "CREATE TRIGGER record_seen AFTER INSERT OR UPDATE OR DELETE ON linkmq_message "
                "FOR EACH ROW EXECUTE FUNCTION record_seen()"
            )
        )
    engine.dispose()
    return migrated_postgres_url


@pytest.fixture(scope="module")
def server_default(observed_url: str) -> str:
    """``synchronous_commit`` of a new session: the server's setting (not ``off``, or these
    tests could not tell it from the option's)."""
    value = _setting_of_new_session(observed_url)
    assert value != "off"
    return value


def _setting_of_new_session(url: str) -> str:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return str(connection.exec_driver_sql("SHOW synchronous_commit").scalar_one())
    finally:
        engine.dispose()


def _seen(url: str, queue: str) -> list[tuple[str, str]]:
    """(operation, synchronous_commit) of each write to ``queue``'s messages, in order."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT op, setting FROM seen WHERE queue = :queue ORDER BY id"),
                {"queue": queue},
            )
            return [(str(op), str(setting)) for op, setting in rows]
    finally:
        engine.dispose()


def _one_connection_engine(url: str) -> sa.Engine:
    # One pooled connection: the application's next checkout is the one the store used.
    return sa.create_engine(url, pool_size=1, max_overflow=0)


def _pooled_setting(engine: sa.Engine) -> tuple[str, int]:
    """``synchronous_commit`` and backend pid of the connection the application checks out."""
    with engine.connect() as connection:
        row = connection.exec_driver_sql(
            "SELECT current_setting('synchronous_commit'), pg_backend_pid()"
        ).one()
    return str(row[0]), int(row[1])


def test_held_put_connection_publishes_with_it_and_goes_back_to_the_pool_without_it(
    observed_url: str, server_default: str
) -> None:
    engine = _one_connection_engine(observed_url)
    store = MessageStore(
        engine, queue_tables("linkmq_"), hold_connections=True, publish_synchronous_commit="off"
    )
    try:
        store.messages.put("held-off", "{}", 0, None)
        held = store.messages.read_held(
            "SELECT current_setting('synchronous_commit'), pg_backend_pid()", {}
        )
    finally:
        store.close()
    try:
        pooled = _pooled_setting(engine)
    finally:
        engine.dispose()

    assert held is not None  # read on the held put connection itself
    assert held[0][0] == "off"
    assert _seen(observed_url, "held-off") == [("INSERT", "off")]
    assert pooled == (server_default, int(held[0][1]))  # the same connection, reset


def test_a_publish_through_the_pool_sets_it_for_its_own_transaction_only(
    observed_url: str, server_default: str
) -> None:
    # Without a held connection (as when another thread is using it): SET LOCAL.
    engine = _one_connection_engine(observed_url)
    with_option = MessageStore(
        engine, queue_tables("linkmq_"), hold_connections=False, publish_synchronous_commit="off"
    )
    without = MessageStore(engine, queue_tables("linkmq_"), hold_connections=False)
    try:
        with_option.messages.put("pooled-off", "{}", 0, None)
        pooled = _pooled_setting(engine)
        without.messages.put("pooled-default", "{}", 0, None)
    finally:
        engine.dispose()

    assert _seen(observed_url, "pooled-off") == [("INSERT", "off")]
    assert pooled[0] == server_default
    assert _seen(observed_url, "pooled-default") == [("INSERT", server_default)]


def test_only_the_transports_own_publishes_use_it_and_every_message_is_delivered(
    observed_url: str, server_default: str
) -> None:
    options = {"publish_synchronous_commit": "off"}
    application = sa.create_engine(observed_url, poolclass=sa.pool.NullPool)
    received: list[Any] = []

    def on_message(body: Any, message: kombu.Message) -> None:
        received.append(body)
        message.ack()

    with kombu.Connection("linkmq+" + observed_url, transport_options=options) as connection:
        alone = kombu.Queue("sc-alone", routing_key="sc-alone")
        in_transaction = kombu.Queue("sc-in-transaction", routing_key="sc-in-transaction")
        producer = connection.Producer()
        for n in range(3):
            producer.publish({"n": n}, routing_key="sc-alone", declare=[alone])
        with application.begin() as own, publish_on(own):
            for n in range(3, 5):
                producer.publish(
                    {"n": n}, routing_key="sc-in-transaction", declare=[in_transaction]
                )
        with connection.Consumer([alone, in_transaction], callbacks=[on_message]):
            while len(received) < 5:
                connection.drain_events(timeout=WAIT_S)
    application.dispose()

    assert sorted(body["n"] for body in received) == [0, 1, 2, 3, 4]
    alone_seen = _seen(observed_url, "sc-alone")
    in_transaction_seen = _seen(observed_url, "sc-in-transaction")
    assert [setting for op, setting in alone_seen if op == "INSERT"] == ["off"] * 3
    assert in_transaction_seen[:2] == [("INSERT", server_default)] * 2
    # Claims (UPDATE) and acks (DELETE) of both queues keep the server's setting.
    later = [row for row in alone_seen + in_transaction_seen if row[0] != "INSERT"]
    assert {op for op, _ in later} == {"UPDATE", "DELETE"}
    assert {setting for _, setting in later} == {server_default}


@pytest.mark.parametrize("value", ["fast", "", "OFF ", True, 0, "off; RESET ALL"])
def test_a_value_postgresql_does_not_name_is_refused(value: object) -> None:
    with pytest.raises(TransportOptionError, match="publish_synchronous_commit must be one of"):
        TransportOptions.from_transport_options({"publish_synchronous_commit": value})


@pytest.mark.parametrize("value", ["on", "off", "local", "remote_write", "remote_apply", None])
def test_postgresqls_values_are_accepted(value: str | None) -> None:
    options = TransportOptions.from_transport_options({"publish_synchronous_commit": value})

    assert options.publish_synchronous_commit == value


def test_it_is_refused_on_sqlite(tmp_path: Path) -> None:
    url = f"linkmq+sqlite:///{tmp_path / 'link_mq.sqlite3'}"
    connection = kombu.Connection(url, transport_options={"publish_synchronous_commit": "off"})

    with pytest.raises(TransportOptionError, match="sqlite_synchronous"):
        _ = connection.transport
    with kombu.Connection(url) as default:
        assert default.transport.store.dialect == "sqlite"  # None (the default) is accepted
