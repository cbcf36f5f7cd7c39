"""The bridge with real ``celery worker`` and ``celery beat`` processes: FIFO ticks that never
overlap, a SIGKILL during a step, worker mode, and ``link-mq demo``."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from celery import Celery

from link_message_queue.celery_config import celery_config
from link_message_queue.messages import Payload, TaskListPosition, WorkflowMessage
from link_message_queue.runtime import build_runtime
from link_message_queue.settings import Settings
from link_message_queue.transport import upgrade

from .bridge_config import HANDLER, NODE, handled, metadata
from .processes import PYTHONPATH, CeleryProcess, stop_all, wait_for

pytestmark = pytest.mark.acceptance


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def app_database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("migrated_postgres_url"))


@pytest.fixture
def environment(app_database_url: str, tmp_path: Path) -> dict[str, str]:
    engine = sa.create_engine(app_database_url, poolclass=sa.pool.NullPool)
    upgrade(engine, "linkmq_")
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as connection:  # the module's PostgreSQL database is shared
        connection.execute(sa.text("DELETE FROM linkmq_message"))
        connection.execute(sa.text("DELETE FROM linkmq_dead_letter"))
    engine.dispose()
    return {
        "LINK_MQ_DATABASE_URL": app_database_url,
        "LINK_MQ_CONFIG": "tests.acceptance.bridge_config",
        "LINK_MQ_TICK_INTERVAL": "0.2",
        "LINK_MQ_LEASE_S": "2",
        "LINK_MQ_RETRY_BACKOFF_S": "0.2",
        "LINK_MQ_TEST_RUNS": str(tmp_path / "runs.txt"),
    }


@pytest.fixture
def celery(environment: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., CeleryProcess]]:
    started: list[CeleryProcess] = []

    def start(
        *args: str,
        extra_env: dict[str, str] | None = None,
        app: str = "link_message_queue.celery_app",
    ) -> CeleryProcess:
        process = CeleryProcess(
            ["-A", app, *args, "--loglevel", "INFO"],
            env={**environment, **(extra_env or {})},
            log_path=tmp_path / f"celery{len(started)}.log",
        )
        started.append(process)
        return process

    yield start
    stop_all(started)


def _dispatch(
    environment: dict[str, str], count: int, sleep_s: float, *, fail: bool = False
) -> None:
    settings = Settings.from_env(environment)
    app = Celery("acceptance-dispatch")
    app.conf.update(celery_config(settings))
    runtime = build_runtime(app, settings)
    position = TaskListPosition.new(NODE)
    for number in range(count):
        collected = WorkflowMessage.new_data_collected(
            Payload("Acceptance\\Item", {"n": number, "sleep_s": sleep_s, "fail": fail}),
            HANDLER,
            NODE,
        )
        runtime.workflow_engine.dispatch(collected.prepare_data_processing(position, HANDLER))


def _handled(database_url: str) -> list[sa.Row[tuple[int, float, float, int]]]:
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            query = sa.select(handled.c.n, handled.c.started_at, handled.c.ended_at, handled.c.pid)
            return list(connection.execute(query.order_by(handled.c.started_at)))
    finally:
        engine.dispose()


def _runs(environment: dict[str, str], event: str) -> Counter[int]:
    path = Path(environment["LINK_MQ_TEST_RUNS"])
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(int(line.split()[1]) for line in lines if line.startswith(event + " "))


WORKER = ("worker", "-c", "2", "--without-mingle", "--without-gossip", "--without-heartbeat")


def test_bridge__ticks_consume_in_fifo_order_and_steps_never_overlap(
    environment: dict[str, str], celery: Callable[..., CeleryProcess], tmp_path: Path
) -> None:
    url = environment["LINK_MQ_DATABASE_URL"]
    _dispatch(environment, 15, sleep_s=0.05)
    celery(*WORKER)
    celery("beat", "--schedule", str(tmp_path / "beat-schedule"))

    wait_for(lambda: len(_handled(url)) == 15, 90, "every message to be handled")

    rows = _handled(url)
    assert [row.n for row in rows] == list(range(15))
    for earlier, later in itertools.pairwise(rows):
        assert later.started_at >= earlier.ended_at, "two consumer steps overlapped"
    assert len({row.pid for row in rows}) >= 1


# PostgreSQL: workers and beat on hosts of their own (SQLite's processes share one host's clock).
@pytest.mark.parametrize(
    "app_database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
@pytest.mark.parametrize("clock_offset_s", [3.0, -3.0])
def test_bridge__ticks_run_on_a_worker_whose_clock_is_off_from_beats(
    environment: dict[str, str],
    celery: Callable[..., CeleryProcess],
    tmp_path: Path,
    clock_offset_s: float,
) -> None:
    # Measured before: a worker whose clock ran 1 s ahead of beat's discarded every tick as
    # expired (Celery's `expires`, an absolute time from beat's clock checked on the
    # worker's) and handled 0 of 5 messages; ticks now expire on the database's clock.
    url = environment["LINK_MQ_DATABASE_URL"]
    _dispatch(environment, 5, sleep_s=0.0)
    worker = celery(
        *WORKER,
        app="tests.acceptance.skewed_clock_app",
        extra_env={"LINK_MQ_TEST_CLOCK_OFFSET_S": str(clock_offset_s)},
    )
    celery("beat", "--schedule", str(tmp_path / "beat-schedule"))

    wait_for(lambda: len(_handled(url)) == 5, 60, "every message to be handled")

    assert "Discarding revoked task" not in worker.log()


def _gauges(database_url: str) -> dict[str, float]:
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT name, value FROM linkmq_gauge"))
            return {str(name): float(value) for name, value in rows}
    finally:
        engine.dispose()


def _queued_ticks(database_url: str) -> int:
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            query = "SELECT count(*) FROM linkmq_message WHERE payload LIKE '%link.tick_occurred%'"
            return int(connection.execute(sa.text(query)).scalar_one())
    finally:
        engine.dispose()


def test_bridge__tick_lag_counts_from_beats_emission(
    environment: dict[str, str], celery: Callable[..., CeleryProcess], tmp_path: Path
) -> None:
    url = environment["LINK_MQ_DATABASE_URL"]
    delay_s = 2.5
    # Ticks that stay valid (expires: 0.9 of the interval) well beyond the delay
    slow_ticks = {"LINK_MQ_TICK_INTERVAL": "10"}
    worker = celery(*WORKER, extra_env=slow_ticks)
    wait_for(lambda: " ready." in worker.log(), 60, "the worker to be ready")

    # Given a worker that cannot run the tick beat emitted for a known time (stopped)
    os.killpg(worker.process.pid, signal.SIGSTOP)
    try:
        celery("beat", "--schedule", str(tmp_path / "beat-schedule"), extra_env=slow_ticks)
        wait_for(lambda: _queued_ticks(url) == 1, 60, "beat to emit a tick")
        time.sleep(delay_s)
    finally:
        resumed_at = time.time()
        os.killpg(worker.process.pid, signal.SIGCONT)

    # When the worker runs it (the gauges of an earlier test may be there: the PostgreSQL
    # database is the module's)
    recorded: dict[str, float] = {}

    def tick_ran() -> bool:
        recorded.update(_gauges(url))
        return recorded.get("last_tick_timestamp_seconds", 0.0) >= resumed_at

    wait_for(tick_ran, 30, "the tick's consumer step")

    # Then the lag counts from beat's emission, not from the task's start
    assert recorded["tick_lag_seconds"] >= delay_s


def test_bridge__ticks_and_steps_report_no_lost_lease(
    environment: dict[str, str], celery: Callable[..., CeleryProcess], tmp_path: Path
) -> None:
    # Given ticks every 0.2 s that expire after 0.18 s, and steps of about a second each
    # (a lease of 4 s: on SQLite a renewal waits for the step's write lock, up to a second)
    url = environment["LINK_MQ_DATABASE_URL"]
    _dispatch(environment, 6, sleep_s=1.0)
    worker = celery(*WORKER, extra_env={"LINK_MQ_LEASE_S": "4"})
    celery("beat", "--schedule", str(tmp_path / "beat-schedule"))

    # When they run
    wait_for(lambda: len(_handled(url)) == 6, 90, "every message to be handled")

    # Then no message ran twice, and no lease is said to be lost: the ticks' rows left by
    # their acks or by the cleaner (expired) while their leases lasted
    assert _runs(environment, "start") == Counter(range(6))
    assert "may run twice" not in worker.log()


def test_bridge__sigkill_during_a_step_writes_the_handlers_row_exactly_once(
    environment: dict[str, str], celery: Callable[..., CeleryProcess], tmp_path: Path
) -> None:
    url = environment["LINK_MQ_DATABASE_URL"]
    _dispatch(environment, 1, sleep_s=3.0)
    worker = celery(*WORKER)
    celery("beat", "--schedule", str(tmp_path / "beat-schedule"))

    wait_for(lambda: _runs(environment, "start")[0] == 1, 60, "the handler to start")
    worker.kill()
    assert _handled(url) == []

    celery(*WORKER)
    wait_for(lambda: len(_handled(url)) == 1, 90, "the message to be handled after the restart")

    assert [row.n for row in _handled(url)] == [0]
    assert _runs(environment, "start")[0] == 2
    assert _runs(environment, "end")[0] == 1


def test_bridge__worker_mode_runs_each_message_once(
    environment: dict[str, str], celery: Callable[..., CeleryProcess]
) -> None:
    url = environment["LINK_MQ_DATABASE_URL"]
    worker_mode = {**environment, "LINK_MQ_CONSUME_MODE": "worker"}
    _dispatch(worker_mode, 20, sleep_s=0.01)
    celery(*WORKER, extra_env={"LINK_MQ_CONSUME_MODE": "worker"})

    wait_for(lambda: len(_handled(url)) == 20, 90, "every message to be handled")

    assert Counter(row.n for row in _handled(url)) == Counter(range(20))


def test_bridge__worker_mode_dead_letters_after_the_configured_attempts(
    environment: dict[str, str], celery: Callable[..., CeleryProcess]
) -> None:
    # LINK_MQ_MAX_ATTEMPTS is left at its default (5), above Celery's own default of 3 retries:
    # Celery's limit used to end the task on the 4th attempt, acked and lost, no dead letter.
    url = environment["LINK_MQ_DATABASE_URL"]
    worker_mode = {**environment, "LINK_MQ_CONSUME_MODE": "worker"}
    assert "LINK_MQ_MAX_ATTEMPTS" not in worker_mode
    _dispatch(worker_mode, 1, sleep_s=0, fail=True)
    celery(*WORKER, extra_env={"LINK_MQ_CONSUME_MODE": "worker"})

    wait_for(lambda: _dead_letters(url) != [], 90, "the failing message to be dead-lettered")

    assert _dead_letters(url) == [("failed", 5)]
    assert _runs(environment, "start")[0] == 5
    assert _handled(url) == []


def _dead_letters(database_url: str) -> list[tuple[str, int]]:
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT reason, attempts FROM linkmq_dead_letter ORDER BY id")
            )
            return [(reason, attempts) for reason, attempts in rows]
    finally:
        engine.dispose()


def test_bridge__demo_runs_end_to_end_on_the_embedded_default(tmp_path: Path) -> None:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("LINK_MQ_")
    }
    result = subprocess.run(
        [sys.executable, "-m", "link_message_queue.cli", "demo", "--users", "20"],
        cwd=tmp_path,
        env={**environment, "PYTHONPATH": PYTHONPATH},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    # Two chunks of 10; the second fails once on purpose, and is retried.
    assert "succeeded: 20 of 20 users written in 2 of 2 chunks, 1 retried, 0 dead-lettered" in (
        result.stdout
    )
    assert (tmp_path / "link_mq.sqlite3").exists()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'link_mq.sqlite3'}")
    with engine.connect() as connection:
        ids = connection.execute(sa.text("SELECT id FROM demo_user ORDER BY id")).scalars()
        assert list(ids) == list(range(1, 21))
    engine.dispose()
