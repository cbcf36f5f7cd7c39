"""SQLite's cross-process wake-up (doorbell): a publish in one process wakes a consumer that
waits in another at once, not at its next poll; stale sockets of killed consumers are removed;
rings of one queue are spaced."""

from __future__ import annotations

import multiprocessing
import socket
import time
from contextlib import closing
from pathlib import Path

import kombu
import pytest
from sqlalchemy.engine import make_url

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.transport.doorbell import Doorbell, doorbell_directory

from . import processes

spawn = multiprocessing.get_context("spawn")
# Polls 60 s apart: a message that arrives within seconds was rung, not polled.
SLOW_POLLS = {"polling_interval": 60.0, "polling_interval_min_s": 60.0}


def _directory(sqlite_url: str) -> Path:
    directory = doorbell_directory(str(make_url(sqlite_url).database), "linkmq_")
    assert directory is not None
    return directory


@pytest.mark.parametrize("delivery_mode", [2, 1], ids=["persistent", "transient"])
def test_doorbell__a_publish_wakes_a_consumer_in_another_process_at_once(
    sqlite_url: str, delivery_mode: int
) -> None:
    broker_url = "linkmq+" + sqlite_url
    directory = _directory(sqlite_url)
    with kombu.Connection(broker_url) as connection:
        connection.SimpleQueue("rung").close()  # tables and queue in place
    results = spawn.Queue()
    consumer = spawn.Process(
        target=processes.receive_one, args=(broker_url, "rung", SLOW_POLLS, results)
    )
    consumer.start()
    try:
        deadline = time.monotonic() + 60
        while not (directory.exists() and any(directory.iterdir())):
            assert time.monotonic() < deadline, "the consumer never listened"
            time.sleep(0.05)
        time.sleep(0.5)  # its first poll (at start) is over: the next is 60 s away

        with kombu.Connection(broker_url) as connection:
            published_at = time.time()
            connection.Producer().publish(
                "ring", routing_key="rung", delivery_mode=delivery_mode, serializer="json"
            )
            payload, arrived_at = results.get(timeout=30)
    finally:
        consumer.join(timeout=10)
        if consumer.is_alive():
            consumer.kill()
    assert payload == "ring"
    # Transient messages are written by a batching thread, at most 50 ms later.
    assert arrived_at - published_at < 2.0
    assert consumer.exitcode == 0
    assert not directory.exists(), "the last consumer to close left its socket or directory"


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
