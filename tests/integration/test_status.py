"""``link-mq status`` on a real database: ready, leased, delayed, oldest age, dead letters."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from contextlib import closing
from typing import Any

import kombu
import pytest

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.cli import main
from link_message_queue.monitoring.metrics import render_metrics
from link_message_queue.monitoring.status import read_status

from .transport import processes

spawn = multiprocessing.get_context("spawn")
SHORT_LEASE = {"lease_s": 1.0, "lease_renew_interval_s": 0.2}


def test_status__counts_what_the_queues_hold(
    broker_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LINK_MQ_DATABASE_URL", broker_url.removeprefix("linkmq+"))
    with kombu.Connection(broker_url) as connection:
        with closing(connection.SimpleQueue("status_a")) as queue_a:
            for number in range(3):
                queue_a.put(number)
            held = queue_a.get_nowait()  # leased
            store = connection.default_channel.store
            (delayed,) = store.messages.claim("status_a", "someone", 30.0, 1)
            store.messages.release([delayed.id], "someone", delay_s=60.0)
            with closing(connection.SimpleQueue("status_b")) as queue_b:
                queue_b.put("x")

                assert main(["status", "--json"]) == 0
                status = json.loads(capsys.readouterr().out)
                assert main(["status"]) == 0
                table = capsys.readouterr().out
            held.ack()

    queues = {queue["name"]: queue for queue in status["queues"]}
    assert (
        queues["status_a"]["ready"],
        queues["status_a"]["leased"],
        queues["status_a"]["delayed"],
    ) == (1, 1, 1)
    assert queues["status_b"]["ready"] == 1
    assert queues["status_a"]["oldest_age_s"] >= 0
    assert status["dead_letters"] == 0
    assert len(status["consumers"]) == 1
    assert "status_a" in table
    assert "dead letters: 0" in table


def test_status__oldest_age_is_of_ready_messages_only(
    broker_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A message a consumer holds (an ETA task a worker keeps until its time) or one in a retry's
    # back-off is not waiting: counted, a healthy queue's age grew for as long as it was held.
    monkeypatch.setenv("LINK_MQ_DATABASE_URL", broker_url.removeprefix("linkmq+"))
    with kombu.Connection(broker_url) as connection:
        with closing(connection.SimpleQueue("status_held")) as queue:
            queue.put("held")
            queue.put("backing off")
            store = connection.default_channel.store
            held = store.messages.claim("status_held", "someone", 30.0, 1)
            (delayed,) = store.messages.claim("status_held", "someone", 30.0, 1)
            store.messages.release([delayed.id], "someone", delay_s=60.0)
            time.sleep(0.2)  # both are older than what comes next
            waiting = _queue_status(capsys, "status_held")
            queue.put("ready")
            ready = _queue_status(capsys, "status_held")
            assert held

    assert (waiting["ready"], waiting["leased"], waiting["delayed"]) == (0, 1, 1)
    assert waiting["oldest_age_s"] is None
    assert ready["ready"] == 1
    assert 0 <= ready["oldest_age_s"] < 0.2  # the new one's age, not the held ones'


def _queue_status(capsys: pytest.CaptureFixture[str], name: str) -> Any:
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    return next(queue for queue in status["queues"] if queue["name"] == name)


def test_status__never_shows_a_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LINK_MQ_DATABASE_URL", "postgresql+psycopg://app:hunter2@127.0.0.1:1/app")

    assert main(["status"]) == 2
    assert "hunter2" not in capsys.readouterr().err


def test_status__lists_the_workflow_queue_before_anything_was_published_to_it(
    broker_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LINK_MQ_DATABASE_URL", broker_url.removeprefix("linkmq+"))
    monkeypatch.setenv("LINK_MQ_QUEUE", "orders_queue")
    with kombu.Connection(broker_url) as connection:
        # The tables exist, the queue does not.
        connection.default_channel.store.queues.queue_names()

    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)

    queues = {queue["name"]: queue for queue in status["queues"]}
    assert queues["orders_queue"] == {
        "name": "orders_queue",
        "ready": 0,
        "leased": 0,
        "delayed": 0,
        "oldest_age_s": None,
        "consumed": False,
    }


def _listed_consumers(capsys: pytest.CaptureFixture[str]) -> Any:
    assert main(["status", "--json"]) == 0
    return {
        consumer["owner"]: consumer["queues"]
        for consumer in json.loads(capsys.readouterr().out)["consumers"]
    }


def test_status__a_connection_that_stopped_consuming_is_no_longer_listed_as_a_consumer(
    broker_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As Flower's pooled connections after an inspect call: consumed a reply queue, stay open.
    monkeypatch.setenv("LINK_MQ_DATABASE_URL", broker_url.removeprefix("linkmq+"))
    options = {"lease_renew_interval_s": 0.1}  # the keeper's round, 2 s by default
    with kombu.Connection(broker_url, transport_options=options) as connection:
        owner = connection.default_channel.leases.owner
        queue = connection.SimpleQueue("replies")
        queue.put("reply")
        queue.get(timeout=5).ack()
        deadline = time.monotonic() + 10
        while owner not in _listed_consumers(capsys):
            assert time.monotonic() < deadline, "the consumer was never listed"
            time.sleep(0.1)
        assert _listed_consumers(capsys)[owner] == ["replies"]

        queue.consumer.cancel()  # stops consuming; the connection stays open
        deadline = time.monotonic() + 10
        while owner in _listed_consumers(capsys):
            assert time.monotonic() < deadline, "the idle connection is still listed"
            time.sleep(0.1)
        queue.close()


def test_status__a_killed_workers_message_counts_as_ready_in_status_metrics_and_size(
    broker_url: str,
) -> None:
    # Given a consumer that held a message and was killed: its lease runs out
    with kombu.Connection(broker_url) as connection:
        with closing(connection.SimpleQueue("orphaned")) as queue:
            queue.put("survives")
    held = spawn.Queue()
    child = spawn.Process(
        target=processes.hold_one_message, args=(broker_url, "orphaned", SHORT_LEASE, held)
    )
    child.start()
    try:
        assert held.get(timeout=60) == "survives"
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(timeout=10)
    finally:
        if child.is_alive():
            child.kill()
    with kombu.Connection(broker_url) as connection:
        store = connection.default_channel.store
        deadline = time.monotonic() + 30
        while store.messages.size("orphaned") == 0:  # a claim would take it again now
            assert time.monotonic() < deadline, "the dead consumer's lease never ran out"
            time.sleep(0.1)

        # When status and metrics count the queue
        (entry,) = [
            q for q in read_status(store.engine, store.tables).queues if q.name == "orphaned"
        ]
        metrics = render_metrics(store.engine, store.tables)

    # Then they count it as a claim and size do: ready, neither leased nor delayed
    assert (entry.ready, entry.leased, entry.delayed) == (1, 0, 0)
    assert 'linkmq_queue_ready{queue="orphaned"} 1.0' in metrics
    assert 'linkmq_queue_in_flight{queue="orphaned"} 0.0' in metrics
    assert 'linkmq_queue_scheduled{queue="orphaned"} 0.0' in metrics


def test_status__consumed_means_a_live_consumer_is_on_it_and_expired_messages_have_no_age(
    broker_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LINK_MQ_DATABASE_URL", broker_url.removeprefix("linkmq+"))
    lonely, busy = kombu.Queue("status_lonely"), kombu.Queue("status_busy")
    with kombu.Connection(broker_url) as publisher:
        # Given a queue that was published to (twice, one message already expired) but that no
        # consumer is on,
        producer = publisher.Producer()
        producer.publish("stale", routing_key=lonely.name, declare=[lonely], expiration=0.2)
        producer.publish("fresh", routing_key=busy.name, declare=[busy])
        time.sleep(0.5)
        # and a queue that a live consumer is on,
        options = {"lease_renew_interval_s": 0.1}  # the keeper's round, 2 s by default
        received: list[kombu.Message] = []
        with (
            kombu.Connection(broker_url, transport_options=options) as consumer,
            consumer.Consumer([busy], callbacks=[lambda _body, message: received.append(message)]),
        ):
            consumer.drain_events(timeout=5)
            deadline = time.monotonic() + 10
            while not _consumed_by_someone(status := json.loads(_status_json(capsys)), busy.name):
                assert time.monotonic() < deadline, "the consumer's heartbeat never came"
                time.sleep(0.1)
            received[0].ack()

    queues = {queue["name"]: queue for queue in status["queues"]}
    # then only the queue a listed consumer is on says it is consumed,
    assert queues["status_lonely"]["consumed"] is False
    assert queues["status_busy"]["consumed"] is True
    # and the expired message is counted nowhere, its age neither.
    assert (
        queues["status_lonely"]["ready"],
        queues["status_lonely"]["leased"],
        queues["status_lonely"]["delayed"],
        queues["status_lonely"]["oldest_age_s"],
    ) == (0, 0, 0, None)


def _status_json(capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["status", "--json"]) == 0
    return capsys.readouterr().out


def _consumed_by_someone(status: dict[str, Any], queue: str) -> bool:
    return any(queue in listed["queues"] for listed in status["consumers"])
