"""Real ``celery worker`` processes on linkmq+: SIGKILL mid-run loses nothing, and a task longer
than the lease is not redelivered while its worker lives."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from .crash_app import app
from .processes import CeleryProcess, stop_all, wait_for

pytestmark = pytest.mark.acceptance

LEASE_S = 2.0


class Runs:
    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self, kind: str) -> Counter[int]:
        if not self.path.exists():
            return Counter()
        lines = self.path.read_text().splitlines()
        return Counter(int(line.split()[1]) for line in lines if line.startswith(kind + " "))


@pytest.fixture
def runs(tmp_path: Path) -> Runs:
    return Runs(tmp_path / "runs.txt")


@pytest.fixture
def start_worker_on(tmp_path: Path) -> Iterator[object]:
    """Start a crash-app worker on a broker URL; every worker is stopped at the end."""
    started: list[CeleryProcess] = []

    def start(
        broker_url: str,
        runs: Runs,
        pool: str = "prefork",
        concurrency: int = 2,
        clock_offset_s: float = 0.0,
    ) -> CeleryProcess:
        worker = CeleryProcess(
            [
                "-A",
                "tests.acceptance.crash_app",
                "worker",
                "-P",
                pool,
                "-c",
                str(concurrency),
                "--loglevel",
                "INFO",
                "-n",
                f"crash{len(started)}@%h",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
            ],
            env={
                "LINK_MQ_TEST_BROKER": broker_url,
                "LINK_MQ_TEST_RUNS": str(runs.path),
                "LINK_MQ_TEST_LEASE_S": str(LEASE_S),
                "LINK_MQ_TEST_CLOCK_OFFSET_S": str(clock_offset_s),
            },
            log_path=tmp_path / f"worker{len(started)}.log",
        )
        started.append(worker)
        return worker

    yield start
    stop_all(started)  # at once: one warm shutdown after another added up their seconds


@pytest.fixture
def start_worker(broker_url: str, runs: Runs, start_worker_on: object) -> object:
    def start(pool: str, concurrency: int = 2) -> CeleryProcess:
        return start_worker_on(broker_url, runs, pool, concurrency)  # type: ignore[operator, no-any-return]

    return start


def _publish(broker_url: str, count: int, duration_s: float) -> None:
    with app.connection_for_write(broker_url) as connection:
        for number in range(count):
            app.send_task("crash.work", args=(number, duration_s), connection=connection)


def _leased(broker_url: str) -> int:
    engine = sa.create_engine(broker_url.removeprefix("linkmq+"), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    sa.text("SELECT count(*) FROM linkmq_message WHERE lease_owner IS NOT NULL")
                ).scalar_one()
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_worker_crash__sigkill_mid_run_loses_no_task(
    broker_url: str, runs: Runs, start_worker: object, pool: str
) -> None:
    total = 20
    _publish(broker_url, total, duration_s=0.3)
    first = start_worker(pool)  # type: ignore[operator]
    wait_for(
        lambda: (
            sum(runs.events("done").values()) >= 4
            and bool(runs.events("start") - runs.events("done"))
        ),
        60,
        "some tasks to finish while others run",
    )

    first.kill()
    leased_at_kill = _leased(broker_url)
    unfinished = runs.events("start") - runs.events("done")

    second = start_worker(pool)  # type: ignore[operator]
    wait_for(lambda: set(runs.events("done")) == set(range(total)), 90, "every task to finish")
    second.stop()

    done = runs.events("done")
    assert set(done) == set(range(total))
    # Only what was leased when the worker died can run twice; prefetch is 1 per process.
    duplicates = [number for number, count in done.items() if count > 1]
    assert 1 <= leased_at_kill <= 2  # the kill hit work in flight
    assert len(duplicates) <= leased_at_kill
    assert set(unfinished) <= set(done)


def test_worker_crash__long_task_is_not_redelivered_while_its_worker_lives(
    broker_url: str, runs: Runs, start_worker: object
) -> None:
    duration_s = LEASE_S * 2.5
    _publish(broker_url, 1, duration_s=duration_s)
    worker = start_worker("prefork")  # type: ignore[operator]

    wait_for(lambda: runs.events("done")[0] == 1, 60, "the long task to finish")
    worker.stop()

    assert runs.events("start") == Counter({0: 1})
    assert runs.events("done") == Counter({0: 1})


def test_worker_crash__a_stalled_worker_whose_lease_was_taken_says_the_task_may_run_twice(
    broker_url: str, runs: Runs, start_worker: object
) -> None:
    # Given a worker running a long task that stalls (SIGSTOP) past its lease, and another
    # worker that claims the task then
    _publish(broker_url, 1, duration_s=LEASE_S * 4)
    stalled = start_worker("prefork")  # type: ignore[operator]
    wait_for(lambda: runs.events("start")[0] == 1, 60, "the task to start")
    os.killpg(stalled.process.pid, signal.SIGSTOP)
    try:
        start_worker("prefork")  # type: ignore[operator]
        wait_for(lambda: runs.events("start")[0] == 2, 60, "the other worker to take the task")
    finally:
        os.killpg(stalled.process.pid, signal.SIGCONT)

    # When the stalled worker goes on, its next lease renewal finds the lease taken
    wait_for(lambda: "may run twice" in stalled.log(), 30, "the stalled worker's warning")

    # Then it said so (the task did run twice)
    wait_for(lambda: runs.events("done")[0] == 2, 60, "both runs to finish")


def test_worker_crash__prefork_children_publish_follow_up_tasks(
    broker_url: str, runs: Runs, start_worker: object
) -> None:
    with app.connection_for_write(broker_url) as connection:
        for number in range(1, 11):
            app.send_task("crash.spawn", args=(number, 3), connection=connection)
    worker = start_worker("prefork")  # type: ignore[operator]

    expected = {number * 100 + child for number in range(1, 11) for child in range(3)}
    wait_for(lambda: expected <= set(runs.events("done")), 60, "every follow-up task to finish")
    worker.stop()

    assert "Traceback" not in worker.log()


def test_worker_crash__countdown_longer_than_the_lease_runs_once_on_time(
    broker_url: str, runs: Runs, start_worker: object
) -> None:
    worker = start_worker("prefork")  # type: ignore[operator]
    countdown_s = LEASE_S * 2.5
    with app.connection_for_write(broker_url) as connection:
        sent = time.time()
        app.send_task("crash.work", args=(7, 0.0), countdown=countdown_s, connection=connection)

    wait_for(lambda: runs.events("done")[7] == 1, 60, "the delayed task to run")
    ran_after_s = time.time() - sent
    time.sleep(LEASE_S)  # a redelivery would show up within a lease
    worker.stop()

    assert ran_after_s >= countdown_s
    assert runs.events("start") == Counter({7: 1})


@pytest.mark.postgres
def test_worker_crash__a_worker_whose_clock_runs_ahead_never_runs_a_held_task_again(
    migrated_postgres_url: str, runs: Runs, start_worker_on: object
) -> None:
    # Measured before the database's clock counted (lease 30 s, clock 35 s ahead, two 25 s
    # tasks): the ahead worker ran both tasks a second time. Here: lease 2 s, clock 5 s ahead.
    broker_url = "linkmq+" + migrated_postgres_url
    duration_s = LEASE_S * 5
    _publish(broker_url, 2, duration_s=duration_s)
    # Given a worker with the right time running both tasks
    right = start_worker_on(broker_url, runs, "prefork", 2)  # type: ignore[operator]
    wait_for(lambda: set(runs.events("start")) == {0, 1}, 60, "both tasks to start")
    # When a worker whose clock runs 5 s ahead joins while they run
    ahead = start_worker_on(broker_url, runs, "prefork", 2, 5.0)  # type: ignore[operator]

    wait_for(lambda: set(runs.events("done")) == {0, 1}, 90, "both tasks to finish")
    time.sleep(LEASE_S)  # a redelivery would show up within a lease
    stop_all([right, ahead])

    # Then each task started once: the leases run by the database's clock
    assert runs.events("start") == Counter({0: 1, 1: 1})
    assert "Traceback" not in ahead.log()
