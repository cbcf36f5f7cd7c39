"""A message id names one message for good: an ack that comes late (its lease ran out and
another consumer took and acked the message) must never delete a newer message."""

from __future__ import annotations

import time

import sqlalchemy as sa

from link_message_queue.db import engine_for
from link_message_queue.db.schema import queue_tables
from link_message_queue.transport import upgrade
from link_message_queue.transport.options import TransportOptions
from link_message_queue.transport.store import MessageStore

_LEASE_S = 0.2


def _store(url: str) -> MessageStore:
    engine = engine_for(url, TransportOptions())
    upgrade(engine, "linkmq_")
    return MessageStore(engine, queue_tables("linkmq_"))


def test_message_ids__a_late_ack_never_deletes_a_newer_message(database_url: str) -> None:
    store = _store(database_url)
    queue = f"ids_{time.time_ns()}"
    store.queues.declare_queue(queue, None)
    try:
        # Given message A, leased by a consumer that stalls past its lease,
        store.messages.put(queue, "A", 0, None)
        (stalled,) = store.messages.claim(queue, "stalled", _LEASE_S, 1)
        time.sleep(_LEASE_S * 2)
        # taken over, run and acked by another consumer (A's row is deleted),
        (taken,) = store.messages.claim(queue, "rival", _LEASE_S, 1)
        assert taken.id == stalled.id
        assert store.messages.ack([taken.id]) == 1
        # when a new message C is published,
        store.messages.put(queue, "C", 0, None)
        # then the stalled consumer's late ack of A deletes nothing,
        assert store.messages.ack([stalled.id]) == 0
        # and C is still there to be delivered.
        (fresh,) = store.messages.claim(queue, "rival", 30, 1)
        assert fresh.payload == "C"
        assert fresh.id != stalled.id
    finally:
        store.messages.purge(queue)
        store.engine.dispose()


def test_message_ids__sqlite_never_reuses_the_id_of_a_deleted_newest_row(sqlite_url: str) -> None:
    store = _store(sqlite_url)
    for table in ("message", "dead_letter", "outbox"):
        name = f"linkmq_{table}"
        with store.engine.begin() as connection:
            sql = connection.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE name = :name"), {"name": name}
            ).scalar_one()
        assert "AUTOINCREMENT" in sql.upper(), f"{name}: {sql}"
    store.engine.dispose()


def test_message_ids__upgrade_rebuilds_a_revision_0005_sqlite_database_keeping_its_rows(
    sqlite_url: str,
) -> None:
    # Given a database at revision 0005, whose id tables lack AUTOINCREMENT, with messages in it
    engine = engine_for(sqlite_url, TransportOptions(auto_migrate=False))
    upgrade(engine, "linkmq_")
    tables = queue_tables("linkmq_")
    id_tables = (tables.message, tables.dead_letter, tables.outbox)
    with engine.begin() as connection:
        for table in id_tables:
            table.drop(connection)
            as_in_0005 = table.to_metadata(sa.MetaData())
            as_in_0005.dialect_kwargs["sqlite_autoincrement"] = False
            as_in_0005.create(connection)
        connection.execute(
            tables.message.insert(),
            [
                {"id": 7, "queue": "q", "payload": "seven", "created_at": 1.0, "visible_at": 1.0},
                {"id": 9, "queue": "q", "payload": "nine", "created_at": 1.0, "visible_at": 1.0},
            ],
        )
        connection.execute(sa.text("UPDATE linkmq_alembic_version SET version_num = '0005'"))

    # When it is upgraded,
    assert upgrade(engine, "linkmq_") == "0006"

    # then every id table has AUTOINCREMENT, the rows and ids are kept, so are the indexes,
    with engine.begin() as connection:
        for table in id_tables:
            sql = connection.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE name = :name"), {"name": table.name}
            ).scalar_one()
            assert "AUTOINCREMENT" in sql.upper()
        rows = connection.execute(sa.text("SELECT id, payload FROM linkmq_message ORDER BY id"))
        assert rows.all() == [(7, "seven"), (9, "nine")]
        indexes = {index["name"] for index in sa.inspect(connection).get_indexes("linkmq_message")}
        assert indexes == {index.name for index in tables.message.indexes}
        # and a deleted newest row's id is never given again.
        connection.execute(sa.text("DELETE FROM linkmq_message WHERE id = 9"))
        connection.execute(
            tables.message.insert().values(queue="q", payload="new", created_at=1.0, visible_at=1.0)
        )
        new_id = connection.execute(
            sa.text("SELECT id FROM linkmq_message WHERE payload = 'new'")
        ).scalar_one()
        assert new_id == 10
    engine.dispose()
