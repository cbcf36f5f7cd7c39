"""Lease renewal on a real SQLite file and a real PostgreSQL: a held message that left its
row by an ack, a release or its time-to-live is no lost lease; one whose lease ran out and was
taken by another consumer is, and says so."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import closing

import kombu
import pytest

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.transport.qos import row_id

HELD = {"lease_s": 1.0}
LOST = "may run twice"


@pytest.fixture
def holder(broker_url: str) -> Iterator[kombu.Connection]:
    """A consumer whose leases are renewed only when the test calls ``renew_now``."""
    with kombu.Connection(broker_url, transport_options=HELD) as connection:
        connection.connect()
        connection.transport.leases.stop()
        yield connection


def _lost_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if LOST in record.getMessage()]


def test_leases__a_message_acked_while_its_renewal_runs_is_not_lost(
    holder: kombu.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a held message whose row the ack deleted before the keeper forgot it (the ack
    # deletes, then forgets: a renewal can read the held ids in between)
    with closing(holder.SimpleQueue("acked")) as queue:
        queue.put("short task")
        message = queue.get(timeout=2)
        message_id = row_id(message.delivery_tag)
        holder.transport.store.messages.ack([message_id])
        caplog.set_level(logging.DEBUG, logger="link_message_queue.transport.leases")

        # When the renewal runs
        renewed = holder.transport.leases.renew_now()

        # Then nothing is reported lost, and the message is no longer held
        assert renewed == 0
        assert _lost_warnings(caplog) == []
        assert message_id not in holder.transport.leases.held()


def test_leases__a_held_message_deleted_when_its_ttl_ran_out_is_not_lost(
    holder: kombu.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a held message (a tick, say) whose time-to-live runs out while its task runs, and
    # the cleaner deletes it: no consumer can claim it any more
    with closing(holder.SimpleQueue("expiring")) as queue:
        queue.put("tick", expiration=0.2)
        message = queue.get(timeout=2)
        time.sleep(0.3)
        assert holder.transport.store.messages.delete_expired(1000) == 1
        caplog.set_level(logging.DEBUG, logger="link_message_queue.transport.leases")

        # When the renewal runs
        holder.transport.leases.renew_now()

        # Then nothing is reported lost
        assert _lost_warnings(caplog) == []
        assert row_id(message.delivery_tag) not in holder.transport.leases.held()


@pytest.mark.parametrize("other_acked", [False, True], ids=["claimed", "claimed_and_acked"])
def test_leases__a_lease_that_ran_out_and_was_taken_by_another_consumer_is_lost(
    holder: kombu.Connection,
    broker_url: str,
    caplog: pytest.LogCaptureFixture,
    other_acked: bool,
) -> None:
    # Given a held message whose lease ran out unrenewed (a stalled process), and another
    # consumer that claimed it then (and perhaps already ran and acked it)
    name = f"stalled-{other_acked}"  # the PostgreSQL database is the module's
    with closing(holder.SimpleQueue(name)) as queue:
        queue.put("long task")
        message = queue.get(timeout=2)
        message_id = row_id(message.delivery_tag)
        with kombu.Connection(broker_url, transport_options=HELD) as other:
            with closing(other.SimpleQueue(name)) as competitor:
                again = competitor.get(timeout=5)
                assert row_id(again.delivery_tag) == message_id
                if other_acked:
                    again.ack()
                caplog.set_level(logging.WARNING, logger="link_message_queue.transport.leases")

                # When the stalled holder's renewal runs at last
                holder.transport.leases.renew_now()

                # Then the lost lease is reported, and no longer renewed
                (warning,) = _lost_warnings(caplog)
                assert warning.message_ids == [message_id]  # type: ignore[attr-defined]
                assert message_id not in holder.transport.leases.held()
