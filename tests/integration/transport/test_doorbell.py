"""SQLite's cross-process wake-up (doorbell): a publish in one process wakes a consumer that
waits in another at once, not at its next poll; stale sockets of killed consumers are removed;
rings of one queue are spaced; a publish inside the caller's transaction rings when it
commits, and not at all when it rolls back."""

from __future__ import annotations

import logging
import multiprocessing
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import kombu
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.transport import publish_on
from link_message_queue.transport.doorbell import Doorbell, doorbell_directory

from . import processes

spawn = multiprocessing.get_context("spawn")
# Polls 60 s apart: a message that arrives within seconds was rung, not polled.
SLOW_POLLS = {"polling_interval": 60.0, "polling_interval_min_s": 60.0}


def _directory(sqlite_url: str) -> Path:
    directory = doorbell_directory(str(make_url(sqlite_url).database), "linkmq_")
    assert directory is not None
    return directory


@contextmanager
def _slow_polling_consumer(broker_url: str, queue: str) -> Iterator[Any]:
    """A consumer in another process that polls every 60 s, ready and past its first poll;
    yields the queue on which it reports ``(payload, arrival time)``."""
    directory = _directory(broker_url.removeprefix("linkmq+"))
    with kombu.Connection(broker_url) as connection:
        connection.SimpleQueue(queue).close()  # tables and queue in place
    results = spawn.Queue()
    consumer = spawn.Process(
        target=processes.receive_one, args=(broker_url, queue, SLOW_POLLS, results)
    )
    consumer.start()
    try:
        deadline = time.monotonic() + 60
        while not (directory.exists() and any(directory.iterdir())):
            assert time.monotonic() < deadline, "the consumer never listened"
            time.sleep(0.05)
        time.sleep(0.5)  # its first poll (at start) is over: the next is 60 s away
        yield results
    finally:
        consumer.join(timeout=10)
        if consumer.is_alive():
            consumer.kill()
    assert consumer.exitcode == 0
    assert not directory.exists(), "the last consumer to close left its socket or directory"


@pytest.mark.parametrize("delivery_mode", [2, 1], ids=["persistent", "transient"])
def test_doorbell__a_publish_wakes_a_consumer_in_another_process_at_once(
    sqlite_url: str, delivery_mode: int
) -> None:
    broker_url = "linkmq+" + sqlite_url
    with _slow_polling_consumer(broker_url, "rung") as results:
        with kombu.Connection(broker_url) as connection:
            published_at = time.time()
            connection.Producer().publish(
                "ring", routing_key="rung", delivery_mode=delivery_mode, serializer="json"
            )
            payload, arrived_at = results.get(timeout=30)
    assert payload == "ring"
    # Transient messages are written by a batching thread, at most 50 ms later.
    assert arrived_at - published_at < 2.0


def _commit_with_engine_begin(engine: sa.Engine, publish: Callable[[], None]) -> None:
    with engine.begin() as connection, publish_on(connection):
        publish()


def _commit_with_a_session(engine: sa.Engine, publish: Callable[[], None]) -> None:
    with Session(engine) as session:
        with publish_on(session):
            publish()
        session.commit()


def _commit_and_keep_the_connection(engine: sa.Engine, publish: Callable[[], None]) -> None:
    connection = engine.connect()
    with publish_on(connection):
        publish()
    connection.commit()
    connection.execute(sa.text("SELECT 1"))  # its next transaction begins: the commit is over
    time.sleep(2.5)  # kept open past the assertion's bound, so the close cannot be what rang
    connection.close()


@pytest.mark.parametrize(
    "commit",
    [_commit_with_engine_begin, _commit_with_a_session, _commit_and_keep_the_connection],
    ids=["engine.begin", "session", "kept-connection"],
)
def test_doorbell__a_publish_inside_publish_on_wakes_the_consumer_when_it_commits(
    sqlite_url: str, commit: Callable[[sa.Engine, Callable[[], None]], None]
) -> None:
    broker_url = "linkmq+" + sqlite_url
    engine = sa.create_engine(sqlite_url)
    with _slow_polling_consumer(broker_url, "rung") as results:
        with kombu.Connection(broker_url) as connection:
            producer = connection.Producer()
            commit(
                engine,
                lambda: producer.publish("in a transaction", routing_key="rung", serializer="json"),
            )
            committed_at = time.time()
            payload, arrived_at = results.get(timeout=30)
    engine.dispose()
    assert payload == "in a transaction"
    # The commit's wake-up came at once (the consumer's next poll is 60 s away); a kept
    # connection rings when its next transaction begins, before ``committed_at``.
    assert arrived_at - committed_at < 2.0


def _publish_then_fail(engine: sa.Engine, producer: kombu.Producer) -> None:
    with engine.begin() as caller, publish_on(caller):
        producer.publish("dropped", routing_key="orders", serializer="json")
        raise RuntimeError("the caller's work failed")


def test_doorbell__a_rolled_back_publish_rings_nobody_and_a_committed_one_rings_once(
    sqlite_url: str,
) -> None:
    broker_url = "linkmq+" + sqlite_url
    with kombu.Connection(broker_url) as connection:
        connection.SimpleQueue("orders").close()
    directory = _directory(sqlite_url)
    directory.mkdir(mode=0o700)
    engine = sa.create_engine(sqlite_url)
    with closing(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)) as listener:
        listener.bind(str(directory / "999999999-listener"))
        listener.settimeout(0.5)
        with kombu.Connection(broker_url) as connection:
            producer = connection.Producer()
            with pytest.raises(RuntimeError, match="the caller's work failed"):
                _publish_then_fail(engine, producer)
            with pytest.raises(TimeoutError):
                listener.recv(1024)

            _commit_with_engine_begin(
                engine, lambda: producer.publish("kept", routing_key="orders", serializer="json")
            )
            assert listener.recv(1024) == b"orders"
            with pytest.raises(TimeoutError):
                listener.recv(1024)
            with kombu.Connection(broker_url) as reader:
                simple = reader.SimpleQueue("orders")
                assert simple.get(timeout=5).payload == "kept"
                assert simple.qsize() == 0
                simple.close()
    engine.dispose()
    (directory / "999999999-listener").unlink()
    directory.rmdir()


def test_doorbell__a_killed_consumers_socket_is_removed_and_the_others_still_rung(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "bells"
    directory.mkdir()
    # A socket whose process was killed: the file stays, nobody reads it.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(directory / "999999998-dead"))
    dead.close()
    with closing(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)) as alive:
        alive.bind(str(directory / "999999999-alive"))
        alive.settimeout(5)
        doorbell = Doorbell(directory, min_interval_s=0.001)

        doorbell.ring("orders")

        assert alive.recv(1024) == b"orders"
        assert sorted(path.name for path in directory.iterdir()) == ["999999999-alive"]
        doorbell.close()


def test_doorbell__a_consumer_that_starts_listening_is_rung_by_the_next_publish(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "bells"
    directory.mkdir()
    doorbell = Doorbell(directory, min_interval_s=0.0)
    doorbell.ring("orders")  # nobody listens yet: the publisher's listing is empty
    with closing(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)) as listener:
        listener.bind(str(directory / "999999999-late"))
        listener.settimeout(0.3)

        doorbell.ring("orders")  # well within the listing's 1 s lifetime

        assert listener.recv(1024) == b"orders"
    doorbell.close()


def test_doorbell__rings_of_one_queue_are_spaced_and_other_queues_rung_meanwhile(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "bells"
    directory.mkdir()
    with closing(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)) as listener:
        listener.bind(str(directory / "999999999-listener"))
        listener.settimeout(0.3)
        doorbell = Doorbell(directory, min_interval_s=0.5)

        for _ in range(5):
            doorbell.ring("busy")
        doorbell.ring("other")
        first = [listener.recv(1024), listener.recv(1024)]
        with pytest.raises(TimeoutError):
            listener.recv(1024)
        time.sleep(0.5)
        doorbell.ring("busy")

        assert first == [b"busy", b"other"]
        assert listener.recv(1024) == b"busy"
        doorbell.close()


def test_doorbell__a_publish_whose_ring_fails_is_still_written_and_the_failure_logged(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker_url = "linkmq+" + sqlite_url
    directory = _directory(sqlite_url)
    directory.write_text("something else took the sockets' directory path")
    engine = sa.create_engine(sqlite_url)
    with caplog.at_level(logging.WARNING), kombu.Connection(broker_url) as connection:
        simple = connection.SimpleQueue("orders")
        producer = connection.Producer()

        producer.publish("plain", routing_key="orders", serializer="json")
        _commit_with_engine_begin(
            engine,
            lambda: producer.publish("in a transaction", routing_key="orders", serializer="json"),
        )

        received = [simple.get(timeout=5).payload for _ in range(2)]
        simple.close()
    engine.dispose()
    directory.unlink()
    assert received == ["plain", "in a transaction"]
    assert "cannot list the consumers to wake" in caplog.text
