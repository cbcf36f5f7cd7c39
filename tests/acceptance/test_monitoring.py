"""Monitoring over linkmq+ with real processes: remote control (``celery inspect``/``control``),
Celery events, and Flower's HTTP API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest
from celery import Celery

import link_message_queue  # noqa: F401  (registers linkmq+)

from .processes import PYTHONPATH, REPO, CeleryProcess, stop_all, wait_for

pytestmark = pytest.mark.acceptance


def _worker_args() -> list[str]:
    # A node name of its own per test: broadcasts to an earlier test's worker never reach it.
    name = f"monitored-{uuid.uuid4().hex[:6]}@%h"
    return [
        "-A",
        "tests.acceptance.crash_app",
        "worker",
        "-P",
        "threads",
        "-c",
        "2",
        "--loglevel",
        "INFO",
        "-E",
        "-n",
        name,
        "--without-mingle",
        "--without-gossip",
    ]


@pytest.fixture
def client(broker_url: str) -> Iterator[Celery]:
    """A Celery app of the test process, on the same broker as the worker."""
    app = Celery("monitoring-client", broker=broker_url)
    app.conf.update(task_serializer="json", accept_content=["json"], task_default_queue="celery")
    yield app
    app.close()  # its connections (and LISTEN threads) end with the test


@pytest.fixture
def worker(broker_url: str, tmp_path: Path) -> Iterator[CeleryProcess]:
    process = CeleryProcess(
        _worker_args(),
        env={"LINK_MQ_TEST_BROKER": broker_url, "LINK_MQ_TEST_RUNS": str(tmp_path / "runs.txt")},
        log_path=tmp_path / "worker.log",
    )
    yield process
    process.stop()


# Celery's default time-out for inspect and control replies: every call here must answer
# within it. A call collects replies for that long, unless it names its destination(s) (or a
# limit): then it ends as soon as they have answered.
REPLY_TIMEOUT_S = 1.0


def _ping(client: Celery, limit: int | None = None) -> dict[str, Any]:
    """The workers that answer a ping within REPLY_TIMEOUT_S: all of them (a full 1 s
    collection), or the first ``limit`` (as soon as they answer)."""
    return client.control.inspect(timeout=REPLY_TIMEOUT_S, limit=limit).ping() or {}


def test_monitoring__inspect_and_control_answer(client: Celery, worker: CeleryProcess) -> None:
    wait_for(lambda: bool(_ping(client, limit=1)), 60, "the worker to answer ping")
    (name,) = _ping(client)
    inspect = client.control.inspect(destination=[name], timeout=REPLY_TIMEOUT_S)

    assert name.startswith("monitored-")
    assert "crash.work" in inspect.registered()[name]
    assert {queue["name"] for queue in inspect.active_queues()[name]} >= {"celery"}
    assert inspect.stats()[name]["pool"]["max-concurrency"] == 2
    assert inspect.active()[name] == []
    assert inspect.reserved()[name] == []
    assert inspect.scheduled()[name] == []

    to_it = {"destination": [name], "reply": True, "timeout": REPLY_TIMEOUT_S}
    replies = client.control.rate_limit("crash.work", "100/s", **to_it)
    assert replies
    assert "ok" in replies[0][name]
    replies = client.control.add_consumer("extra", **to_it)
    assert "ok" in replies[0][name]
    wait_for(
        lambda: "extra" in {q["name"] for q in inspect.active_queues()[name]}, 10, "the new queue"
    )
    replies = client.control.cancel_consumer("extra", **to_it)
    assert "ok" in replies[0][name]

    client.control.broadcast("shutdown")
    wait_for(lambda: worker.process.poll() is not None, 30, "the worker to shut down")


def test_monitoring__concurrent_inspect_calls_from_threads_all_get_the_reply(
    client: Celery, worker: CeleryProcess
) -> None:
    # Given a worker that answers ping, and 8 threads of one process
    wait_for(lambda: bool(_ping(client, limit=1)), 60, "the worker to answer ping")
    (name,) = _ping(client)
    threads, calls = 8, 3
    answers: list[dict[str, Any]] = []
    start = threading.Barrier(threads)

    def call() -> None:
        start.wait()
        for _ in range(calls):
            # Addressed to the one worker: the call ends as soon as its reply comes, and only
            # a lost reply waits for the (generous) time-out.
            inspect = client.control.inspect(destination=[name], timeout=15.0)
            answers.append(inspect.ping() or {})

    # When each thread pings it at the same time, over and over (each call binds a reply
    # queue of its own just before the worker answers to it)
    callers = [threading.Thread(target=call) for _ in range(threads)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()

    # Then every call got the worker's reply (a cached routing table lost about half)
    lost = [answer for answer in answers if name not in answer]
    assert len(answers) == threads * calls
    assert lost == []


def test_monitoring__revoke_reaches_the_worker(
    client: Celery, worker: CeleryProcess, broker_url: str
) -> None:
    wait_for(lambda: bool(_ping(client, limit=1)), 60, "the worker to answer ping")
    result = client.send_task("crash.work", args=(1, 0.0), countdown=3)
    client.control.revoke(result.id)

    (name,) = _ping(client)
    inspect = client.control.inspect(destination=[name], timeout=REPLY_TIMEOUT_S)
    wait_for(
        lambda: result.id in (inspect.revoked() or {}).get(name, []),
        20,
        "the revoke to reach the worker",
    )


def test_monitoring__events_reach_a_receiver(client: Celery, worker: CeleryProcess) -> None:
    seen: list[dict[str, Any]] = []
    with client.connection_for_read() as connection:
        receiver = client.events.Receiver(connection, handlers={"*": seen.append})

        def receive() -> None:
            # One receiver (one queue) for the whole test; should_stop ends it.
            for _ in receiver.consume(limit=None, timeout=None, wakeup=False):
                pass

        listener = threading.Thread(target=receive, daemon=True)
        listener.start()
        try:
            wait_for(lambda: any(e["type"] == "worker-heartbeat" for e in seen), 60, "a heartbeat")
            result = client.send_task("crash.work", args=(2, 0.0))
            wait_for(
                lambda: (
                    {"task-received", "task-started", "task-succeeded"}
                    <= {event["type"] for event in seen if event.get("uuid") == result.id}
                ),
                30,
                "the task's events",
            )
        finally:
            receiver.should_stop = True
            listener.join(timeout=10)


def test_monitoring__task_events_arrive_grouped_and_every_one_of_them(
    client: Celery, worker: CeleryProcess, broker_url: str
) -> None:
    """The worker's GroupedTaskEvents step: task events travel as Celery's ``task.multi``
    messages (lists of events), and none is lost on the way."""
    exchange = kombu.Exchange("celeryev", type="topic")
    queue = kombu.Queue(f"grouped-{uuid.uuid4().hex[:8]}", exchange, routing_key="task.#")
    messages: list[tuple[str, Any]] = []
    with kombu.Connection(broker_url) as connection:
        bound = queue(connection.default_channel)
        bound.declare()
        # A publisher trusts the bindings it read for up to a second while they match some
        # queue (an earlier test's receiver may still be bound): the ping (a 1 s collection)
        # comes after the binding, so the worker's events see it.
        wait_for(lambda: bool(_ping(client)), 60, "the worker to answer ping")
        results = [client.send_task("crash.work", args=(n, 0.0)) for n in range(10)]
        expected = {
            (result.id, kind)
            for result in results
            for kind in ("task-received", "task-started", "task-succeeded")
        }

        def events() -> set[tuple[str, str]]:
            while (message := bound.get(no_ack=True)) is not None:
                messages.append((message.delivery_info["routing_key"], message.payload))
            return {
                (event["uuid"], event["type"])
                for _, body in messages
                for event in (body if isinstance(body, list) else [body])
            }

        wait_for(lambda: expected <= events(), 30, "every task event")
        bound.delete()

    grouped = [body for key, body in messages if key == "task.multi"]
    assert grouped, f"no grouped message among {[key for key, _ in messages]}"
    assert all(isinstance(body, list) for body in grouped)
    # 30 task events in fewer messages than events.
    assert len(messages) < len(expected)


def test_monitoring__a_stopping_worker_sends_the_task_events_it_holds(
    client: Celery, broker_url: str, tmp_path: Path
) -> None:
    exchange = kombu.Exchange("celeryev", type="topic")
    queue = kombu.Queue(f"held-{uuid.uuid4().hex[:8]}", exchange, routing_key="task.#")
    runs = tmp_path / "runs.txt"
    with kombu.Connection(broker_url) as connection:
        bound = queue(connection.default_channel)
        bound.declare()
        worker = CeleryProcess(
            _worker_args(),
            env={
                "LINK_MQ_TEST_BROKER": broker_url,
                "LINK_MQ_TEST_RUNS": str(runs),
                # Were the GroupedTaskEvents step at work, only the shutdown would send the group.
                "LINK_MQ_TEST_EVENTS_INTERVAL_S": "60",
            },
            log_path=tmp_path / "worker.log",
        )
        try:
            wait_for(lambda: bool(_ping(client, limit=1)), 60, "the worker to answer ping")
            results = [client.send_task("crash.work", args=(n, 0.0)) for n in range(3)]
            wait_for(lambda: runs.exists() and runs.read_text().count("done") == 3, 30, "the tasks")
            # The worker runs Celery's event loop on linkmq+, which sends the groups itself (the
            # GroupedTaskEvents step and its interval stay idle): nothing is held back for long.
        finally:
            worker.stop()

        bodies = []
        while (message := bound.get(no_ack=True)) is not None:
            assert message.delivery_info["routing_key"] == "task.multi"
            bodies.extend(message.payload)
        bound.delete()
    assert {(event["uuid"], event["type"]) for event in bodies} == {
        (result.id, kind)
        for result in results
        for kind in ("task-received", "task-started", "task-succeeded")
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_monitoring__flower_shows_workers_and_tasks(
    client: Celery, worker: CeleryProcess, broker_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    flower = CeleryProcess(
        ["-A", "tests.acceptance.crash_app", "flower", f"--port={port}", "--address=127.0.0.1"],
        env={"LINK_MQ_TEST_BROKER": broker_url, "FLOWER_UNAUTHENTICATED_API": "true"},
        log_path=tmp_path / "flower.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{base}/healthcheck"), 60, "Flower to start")
        wait_for(
            lambda: any(
                name.startswith("monitored-") for name in _get(f"{base}/api/workers?refresh=1")
            ),
            60,
            "Flower to list the worker",
        )
        result = client.send_task("crash.work", args=(3, 0.0))
        wait_for(
            lambda: _get(f"{base}/api/tasks").get(result.id, {}).get("state") == "SUCCESS",
            60,
            "Flower to show the task succeeded",
        )
        # A queue no worker consumes (as the workflow queue in tick mode) shows its length.
        for number in range(3):
            client.send_task("crash.work", args=(number, 0.0), queue="link_processing_queue")
        lengths = {
            queue["name"]: queue["messages"]
            for queue in _get(f"{base}/api/queues/length")["active_queues"]
        }
        assert lengths["link_processing_queue"] == 3
    finally:
        flower.stop()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        time.sleep(0.2)
        return False


def test_monitoring__two_workers_pool_control_broadcast_revoke_and_celery_status(
    client: Celery, broker_url: str, tmp_path: Path
) -> None:
    env = {"LINK_MQ_TEST_BROKER": broker_url, "LINK_MQ_TEST_RUNS": str(tmp_path / "runs.txt")}
    names = [f"pool{index}-{uuid.uuid4().hex[:6]}" for index in range(2)]
    workers = [
        CeleryProcess(
            [
                "-A",
                "tests.acceptance.crash_app",
                "worker",
                "-P",
                "prefork",
                "-c",
                "1",
                "--loglevel",
                "INFO",
                "-n",
                f"{name}@%h",
                "--without-mingle",
                "--without-gossip",
            ],
            env=env,
            log_path=tmp_path / f"{name}.log",
        )
        for name in names
    ]
    try:
        wait_for(lambda: len(_ping(client, limit=2)) == 2, 90, "both workers to answer ping")
        nodes = sorted(_ping(client))
        inspect = client.control.inspect(destination=nodes, timeout=REPLY_TIMEOUT_S)

        def pool_sizes() -> dict[str, int]:
            stats = inspect.stats() or {}
            return {node: len(stats[node]["pool"]["processes"]) for node in stats}

        to_both = {"destination": nodes, "reply": True, "timeout": REPLY_TIMEOUT_S}
        replies = client.control.pool_grow(1, **to_both)
        assert {name for reply in replies for name in reply} == set(nodes)
        wait_for(lambda: pool_sizes() == dict.fromkeys(nodes, 2), 30, "both pools to grow")
        client.control.pool_shrink(1, **to_both)
        wait_for(lambda: pool_sizes() == dict.fromkeys(nodes, 1), 30, "both pools to shrink")

        revoked_id = str(uuid.uuid4())
        client.control.revoke(revoked_id)  # a broadcast: every worker must hear it
        wait_for(
            lambda: (
                all(revoked_id in ids for ids in (inspect.revoked() or {}).values())
                and len(inspect.revoked() or {}) == 2
            ),
            20,
            "the revoke to reach both workers",
        )

        status = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "tests.acceptance.crash_app", "status"],
            cwd=REPO,
            env={**os.environ, **env, "PYTHONPATH": PYTHONPATH},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert status.returncode == 0, status.stderr
        assert "2 nodes online" in status.stdout
        for node in nodes:
            assert node in status.stdout
    finally:
        stop_all(workers)
