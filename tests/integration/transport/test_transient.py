"""Transient messages (delivery_mode 1: Celery's events and remote control) are written in
batches by a thread: in order, nothing dropped when the buffer fills or the database refuses,
written on close, never twice after a fork."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from typing import Any

import kombu
import pytest
import sqlalchemy as sa

import link_message_queue  # noqa: F401  (registers linkmq+)


def _count(broker_url: str, queue: str) -> int:
    engine = sa.create_engine(broker_url.removeprefix("linkmq+"), poolclass=sa.pool.NullPool)
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


def _publish(connection: kombu.Connection, queue: kombu.Queue, numbers: range, mode: int) -> None:
    producer = connection.Producer()
    for number in numbers:
        producer.publish(
            {"n": number},
            routing_key=queue.name,
            delivery_mode=mode,
            declare=[queue],
        )


def _received(broker_url: str, queue: kombu.Queue, expected: int) -> list[int]:
    numbers: list[int] = []

    def collect(body: Any, message: kombu.Message) -> None:
        numbers.append(body["n"])
        message.ack()

    with (
        kombu.Connection(broker_url) as connection,
        kombu.Consumer(connection, [queue], callbacks=[collect], accept=["json"]),
    ):
        deadline = time.monotonic() + 10
        while len(numbers) < expected and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                connection.drain_events(timeout=0.5)
    return numbers


def test_transient__after_a_quiet_spell_at_once_then_a_burst_in_one_later_batch_in_order(
    broker_url: str,
) -> None:
    queue = kombu.Queue("events_batched")
    options = {"transient_flush_s": 1.0}
    with kombu.Connection(broker_url, transport_options=options) as connection:
        queue(connection.default_channel).declare()
        time.sleep(1.1)  # a quiet spell: nothing written for longer than the interval
        started = time.monotonic()
        _publish(connection, queue, range(1), mode=1)
        while _count(broker_url, queue.name) < 1 and time.monotonic() - started < 10:
            time.sleep(0.01)
        # Nothing was written for a while: the first message does not wait for the interval.
        assert time.monotonic() - started < 1.0
        _publish(connection, queue, range(1, 51), mode=1)
        assert connection.transport.transient.buffered == 50
        assert _count(broker_url, queue.name) == 1  # the burst gathers
        _publish(connection, queue, range(51, 52), mode=2)
        assert _count(broker_url, queue.name) == 2  # a persistent message never waits
        deadline = time.monotonic() + 10
        while _count(broker_url, queue.name) < 52 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert connection.transport.transient.buffered == 0
        # One batch per interval: the burst went no sooner than 1 s after the first write.
        assert time.monotonic() - started >= 0.9
    assert sorted(_received(broker_url, queue, 52)) == list(range(52))


def test_transient__batch_keeps_publish_order(broker_url: str) -> None:
    queue = kombu.Queue("events_order")
    with kombu.Connection(broker_url, transport_options={"transient_flush_s": 0.05}) as connection:
        _publish(connection, queue, range(200), mode=1)
    assert _received(broker_url, queue, 200) == list(range(200))


def test_transient__a_full_buffer_is_written_by_the_publisher_in_order(broker_url: str) -> None:
    queue = kombu.Queue("events_full")
    options = {"transient_flush_s": 60.0, "transient_buffer_max": 10}
    with kombu.Connection(broker_url, transport_options=options) as connection:
        _publish(connection, queue, range(25), mode=1)
        # The writer thread sleeps for a minute: the publisher wrote two full buffers itself.
        assert _count(broker_url, queue.name) == 20
        assert connection.transport.transient.buffered == 5
    # Closing the connection wrote the rest.
    assert _received(broker_url, queue, 25) == list(range(25))


def test_transient__closing_the_connection_writes_what_is_buffered(broker_url: str) -> None:
    queue = kombu.Queue("events_close")
    with kombu.Connection(broker_url, transport_options={"transient_flush_s": 60.0}) as connection:
        _publish(connection, queue, range(5), mode=1)
        assert _count(broker_url, queue.name) == 0
        closing_began = time.monotonic()
    # At once: before, the writer thread slept out its interval and close() waited 5 s for it.
    assert time.monotonic() - closing_began < 2.0
    assert _count(broker_url, queue.name) == 5


def test_transient__a_forked_child_never_writes_its_parents_rows(broker_url: str) -> None:
    queue = kombu.Queue("events_fork")
    with kombu.Connection(broker_url, transport_options={"transient_flush_s": 60.0}) as connection:
        _publish(connection, queue, range(3), mode=1)
        pid = os.fork()
        if pid == 0:  # the child: flush what it inherited, which must be nothing
            try:
                connection.transport.transient.flush()
                os._exit(0 if connection.transport.transient.buffered == 0 else 3)
            except BaseException:
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert _count(broker_url, queue.name) == 0
    assert _count(broker_url, queue.name) == 3


def test_transient__a_refused_write_is_logged_retried_and_loses_nothing(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker_url = "linkmq+" + sqlite_url
    queue = kombu.Queue("events_retry")
    options = {"transient_flush_s": 0.01, "busy_timeout_s": 0.05}
    with kombu.Connection(broker_url, transport_options=options) as connection:
        queue(connection.default_channel).declare()
        # Another writer holds SQLite's write lock for a while: the batch write times out.
        blocker = sqlite3.connect(
            sqlite_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
        )
        blocker.execute("BEGIN IMMEDIATE")
        released = threading.Timer(1.5, blocker.execute, args=("COMMIT",))
        with caplog.at_level(logging.ERROR, logger="link_message_queue.transport.transient"):
            _publish(connection, queue, range(5), mode=1)
            released.start()
            released.join()
            deadline = time.monotonic() + 10
            while connection.transport.transient.buffered and time.monotonic() < deadline:
                time.sleep(0.05)
        blocker.close()
        logged = [record.getMessage() for record in caplog.records]
        assert any("writing 5 transient messages" in text and "retrying" in text for text in logged)
    assert _received(broker_url, queue, 5) == list(range(5))
