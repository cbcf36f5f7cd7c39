"""The direct delivery API (``Deliveries``/``Delivery``) on a real SQLite file and a real
PostgreSQL: the body as the channel delivers it, completion inside the caller's transaction,
retries that wait, leases renewed by the lease keeper, and a lost lease said out loud."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass

import kombu
import pytest
import sqlalchemy as sa

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.bridge.sources import DeliverySource
from link_message_queue.db import engine_for, queue_tables
from link_message_queue.transport import (
    Deliveries,
    Delivery,
    LeaseKeeper,
    LeaseLostError,
    MessageStore,
    TransportOptions,
    upgrade,
)

QUEUE = "direct"


@dataclass
class Broker:
    url: str  # the linkmq+ URL
    options: dict[str, object]
    store: MessageStore
    keepers: list[LeaseKeeper]

    def deliveries(self, lease_s: float = 30.0, *, renewed: bool = True) -> Deliveries:
        """A direct consumer of QUEUE with an owner of its own; its keeper renews its leases
        every lease_s / 5 seconds unless not ``renewed``."""
        keeper = LeaseKeeper(
            self.store,
            f"test:{uuid.uuid4().hex[:8]}",
            lease_s=lease_s,
            renew_interval_s=lease_s / 5,
            cleanup_interval_s=None,
        )
        if not renewed:
            keeper.stop()  # before its thread ever started: holding renews nothing
        self.keepers.append(keeper)
        return Deliveries(keeper, QUEUE)

    def publish(self, body: object, **kwargs: object) -> None:
        with (
            kombu.Connection(self.url, transport_options=self.options) as connection,
            closing(connection.SimpleQueue(QUEUE)) as queue,
        ):
            queue.put(body, **kwargs)

    def rows(self) -> int:
        message = self.store.tables.message
        with self.store.engine.connect() as connection:
            count = connection.execute(
                sa.select(sa.func.count()).where(message.c.queue == QUEUE)
            ).scalar_one()
        return int(count)


@pytest.fixture
def broker(database_url: str) -> Iterator[Broker]:
    # Tables of their own per test: the PostgreSQL database is shared by the module.
    prefix = f"d{uuid.uuid4().hex[:8]}_"
    options = TransportOptions(table_prefix=prefix)
    engine = engine_for(database_url, options)
    upgrade(engine, prefix)
    store = MessageStore(engine, queue_tables(prefix))
    broker = Broker(f"linkmq+{database_url}", {"table_prefix": prefix}, store, [])
    broker.publish("declare")  # the queue and its binding exist before anything is taken
    store.messages.purge(QUEUE)
    yield broker
    for keeper in broker.keepers:
        keeper.stop()


def _eventually(take: Callable[[], Delivery | None], within_s: float = 20.0) -> Delivery:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        delivery = take()
        if delivery is not None:
            return delivery
        time.sleep(0.05)
    raise AssertionError(f"nothing was delivered within {within_s} s")


def test_delivery__body_headers_and_attempt_are_what_the_channel_delivers(broker: Broker) -> None:
    # Given a text and a binary message as the channel delivers them
    def publish_both() -> None:
        broker.publish({"n": 1, "text": "grüße"}, headers={"task": "t"})
        broker.publish(b"\x00\xffbinary", serializer=None, content_type="application/data")

    publish_both()
    with (
        kombu.Connection(broker.url, transport_options=broker.options) as connection,
        closing(connection.SimpleQueue(QUEUE)) as queue,
    ):
        by_channel = [queue.get(timeout=5) for _ in range(2)]
        for message in by_channel:
            message.ack()
    publish_both()
    deliveries = broker.deliveries()

    # When the same two are taken directly
    direct = [deliveries.take(), deliveries.take()]

    # Then each has the channel's body, headers and content type, on its first attempt
    for delivery, message in zip(direct, by_channel, strict=True):
        assert delivery is not None
        assert delivery.body == message.body
        assert delivery.headers == message.headers
        assert delivery.content_type == message.content_type
        assert delivery.attempt == 1
    assert direct[1].body == b"\x00\xffbinary"
    assert deliveries.take() is None  # nothing else is ready


def test_delivery__complete_in_a_transaction_that_rolls_back_leaves_the_message(
    broker: Broker,
) -> None:
    broker.publish("keep me")
    deliveries = broker.deliveries()
    delivery = deliveries.take()
    assert delivery is not None

    # When it is completed in a transaction that then rolls back
    with broker.store.engine.connect() as connection:
        transaction = connection.begin()
        delivery.complete(connection)
        transaction.rollback()

    # Then the message is still there, and comes back as the next attempt once handed back
    assert broker.rows() == 1
    assert delivery.retry(0.0) is True
    again = deliveries.take()
    assert again is not None
    assert (again.id, again.attempt) == (delivery.id, 2)

    # And completed in a transaction that commits, it is gone
    with broker.store.engine.begin() as connection:
        again.complete(connection)
    assert broker.rows() == 0


def test_delivery__retry_hands_it_back_visible_only_after_the_delay(broker: Broker) -> None:
    broker.publish("later")
    deliveries = broker.deliveries()
    first = deliveries.take()
    assert first is not None

    # A long delay: not deliverable now, nor counted as ready, but still stored
    assert first.retry(3600.0) is True
    assert deliveries.take() is None
    assert broker.store.messages.size(QUEUE) == 0
    assert broker.rows() == 1

    # A short one: delivered again once it has passed, as the next attempt
    message = broker.store.tables.message
    with broker.store.engine.begin() as connection:
        connection.execute(sa.update(message).values(visible_at=0.0))  # the hour is over
    second = deliveries.take()
    assert second is not None
    assert second.retry(0.3) is True
    third = _eventually(deliveries.take)
    assert (third.id, third.attempt) == (first.id, 3)


def test_delivery__a_delivery_held_longer_than_its_lease_is_renewed_and_not_redelivered(
    broker: Broker,
) -> None:
    broker.publish("slow handler")
    holder = broker.deliveries(lease_s=1.0)
    other = broker.deliveries(lease_s=1.0)
    delivery = holder.take()
    assert delivery is not None

    # While it is held three times its lease, another consumer finds nothing
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        assert other.take() is None
        time.sleep(0.2)

    # And the holder still completes it
    with broker.store.engine.begin() as connection:
        delivery.complete(connection)
    assert broker.rows() == 0
    assert holder.keeper.held() == []


def test_delivery__a_lost_lease_is_reported_by_complete(broker: Broker) -> None:
    broker.publish("stalled")
    stalled = broker.deliveries(lease_s=0.5, renewed=False)
    other = broker.deliveries()
    delivery = stalled.take()
    assert delivery is not None

    # Its lease runs out unrenewed, and another consumer takes the message
    taken = _eventually(other.take)
    assert (taken.id, taken.attempt) == (delivery.id, 2)

    # Then completing it says the lease was lost, and deletes nothing
    with (
        broker.store.engine.begin() as connection,
        pytest.raises(LeaseLostError, match=f"lost the lease on message {delivery.id}"),
    ):
        delivery.complete(connection)
    assert broker.rows() == 1
    assert delivery.retry(0.0) is False  # nor can it hand back what is no longer its own
    with broker.store.engine.begin() as connection:
        taken.complete(connection)
    assert broker.rows() == 0


def test_lease_keeper__a_lock_held_longer_than_its_lease_is_renewed_until_released(
    broker: Broker,
) -> None:
    keeper = broker.deliveries(lease_s=1.0).keeper

    with keeper.locked("step") as locked:
        assert locked
        time.sleep(3.0)  # three times the lock's time-to-live
        assert not keeper.locks.try_lock("step", "someone else", 1.0)

    assert keeper.locks.try_lock("step", "someone else", 1.0)
    with keeper.locked("step") as locked:
        assert not locked


def test_delivery_source__a_delivery_the_step_could_not_settle_comes_back_after_its_lease(
    broker: Broker,
) -> None:
    # The step's dead-letter transaction could not begin (the database was gone for a moment):
    # the error ends the step with the delivery neither completed nor retried.
    broker.publish("unsettled")
    holder = broker.deliveries(lease_s=1.0)
    other = broker.deliveries(lease_s=1.0)
    gone = sa.create_engine("sqlite:////nonexistent/dir/db.sqlite3")

    def step() -> None:
        for _ in DeliverySource(holder).receive(1):
            with gone.begin():
                pass

    with pytest.raises(sa.exc.OperationalError):
        step()

    assert holder.keeper.held() == []  # its lease is no longer renewed
    taken = _eventually(other.take)  # so it comes back once the lease ran out
    assert taken.attempt == 2
