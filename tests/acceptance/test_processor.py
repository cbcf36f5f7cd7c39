"""The workflow processor with real ``celery worker`` (and ``celery beat``) processes on SQLite
and PostgreSQL: linear, chunk and for-each processes to the end in tick and worker mode, and a
worker SIGKILLed mid-process whose process still finishes with no row written twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from celery import Celery

from link_message_queue.bridge.producer import Producer
from link_message_queue.celery_config import celery_config
from link_message_queue.db.schema import process_tables
from link_message_queue.messages import WorkflowMessage
from link_message_queue.settings import Settings
from link_message_queue.transport import upgrade
from tests import processor_workflow as workflow

from .processes import CeleryProcess, wait_for

pytestmark = pytest.mark.acceptance

WORKER = ("worker", "-c", "2", "--without-mingle", "--without-gossip", "--without-heartbeat")
processes_table = process_tables("linkmq_").process


@pytest.fixture
def environment(app_database_url: str, tmp_path: Path) -> dict[str, str]:
    engine = sa.create_engine(app_database_url, poolclass=sa.pool.NullPool)
    upgrade(engine, "linkmq_")
    workflow.metadata.drop_all(engine)
    workflow.metadata.create_all(engine)
    with engine.begin() as connection:  # the module's PostgreSQL database is shared
        for table in ("linkmq_message", "linkmq_process_task", "linkmq_process"):
            connection.execute(sa.text(f"DELETE FROM {table}"))
    engine.dispose()
    csv_path = tmp_path / "users.csv"
    workflow.write_users_csv(str(csv_path), 25)
    return {
        "LINK_MQ_DATABASE_URL": app_database_url,
        "LINK_MQ_CONFIG": "tests.processor_workflow",
        "LINK_MQ_TEST_CSV": str(csv_path),
        "LINK_MQ_TEST_RUNS": str(tmp_path / "runs.txt"),
        "LINK_MQ_TICK_INTERVAL": "0.1",
        "LINK_MQ_MESSAGES_PER_TICK": "5",
        "LINK_MQ_LEASE_S": "2",
        "LINK_MQ_RETRY_BACKOFF_S": "0.2",
    }


def _start(environment: dict[str, str], message: WorkflowMessage) -> None:
    settings = Settings.from_env(environment)
    app = Celery("acceptance-start")
    app.conf.update(celery_config(settings))
    Producer(app, settings.queue).dispatch(message)


def _top_level_status(url: str) -> list[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            query = sa.select(processes_table.c.status).where(
                processes_table.c.parent_position.is_(None)
            )
            return list(connection.execute(query).scalars())
    finally:
        engine.dispose()


def _users(url: str, clear: bool = False) -> list[int]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            ids = list(
                connection.execute(
                    sa.select(workflow.app_user.c.id).order_by(workflow.app_user.c.id)
                ).scalars()
            )
            if clear:
                connection.execute(sa.delete(workflow.app_user))
                connection.execute(sa.delete(processes_table))
            return ids
    finally:
        engine.dispose()


def _run_to_the_end(environment: dict[str, str], message: WorkflowMessage) -> list[int]:
    url = environment["LINK_MQ_DATABASE_URL"]
    _start(environment, message)
    wait_for(
        lambda: _top_level_status(url) in (["succeeded"], ["failed"]),
        90,
        f"the process started by {message.name} to end",
    )
    assert _top_level_status(url) == ["succeeded"]
    return _users(url, clear=True)


@pytest.mark.parametrize("mode", ["tick", "worker"])
def test_processor__linear_chunk_and_for_each_run_to_the_end(
    environment: dict[str, str], celery: Callable[..., CeleryProcess], tmp_path: Path, mode: str
) -> None:
    celery(*WORKER, extra_env={"LINK_MQ_CONSUME_MODE": mode})
    if mode == "tick":
        celery("beat", "--schedule", str(tmp_path / "beat-schedule"))
    environment = {**environment, "LINK_MQ_CONSUME_MODE": mode}

    assert _run_to_the_end(environment, workflow.start_linear()) == list(range(1, 26))
    assert _run_to_the_end(environment, workflow.start_chunks(25, 10)) == list(range(1, 26))
    assert _run_to_the_end(environment, workflow.start_for_each(7)) == list(range(1, 8))


def test_processor__worker_sigkilled_mid_process_finishes_after_restart_writing_once(
    environment: dict[str, str], celery: Callable[..., CeleryProcess]
) -> None:
    url = environment["LINK_MQ_DATABASE_URL"]
    runs = Path(environment["LINK_MQ_TEST_RUNS"])
    worker_mode = {**environment, "LINK_MQ_CONSUME_MODE": "worker"}
    slow = {"LINK_MQ_CONSUME_MODE": "worker", "LINK_MQ_TEST_SLOW_S": "2"}
    _start(worker_mode, workflow.start_chunks(25, 10))
    worker = celery(*WORKER, extra_env=slow)

    wait_for(lambda: runs.exists() and "start" in runs.read_text(), 60, "a write to start")
    worker.kill()
    assert _users(url) == []  # the killed writes never committed
    assert _top_level_status(url) == ["running"]

    celery(*WORKER, extra_env={**slow, "LINK_MQ_TEST_SLOW_S": "0"})
    wait_for(lambda: _top_level_status(url) != ["running"], 90, "the process to end")

    assert _top_level_status(url) == ["succeeded"]
    assert _users(url) == list(range(1, 26))  # each user once: the table's key would refuse more
    starts = runs.read_text().count("start")
    assert starts > 3, "the killed write was not run again"
