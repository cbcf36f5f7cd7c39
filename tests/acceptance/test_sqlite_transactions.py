"""An application publishing inside its own SQLite transactions while a real ``celery worker``
drains the same file: with ``sqlite_engine()`` (BEGIN IMMEDIATE) every publish goes through;
with SQLAlchemy's recipe for real pysqlite transactions (a plain, DEFERRED BEGIN) the refused
ones raise the error that names the helper, never a bare "database is locked"."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from link_message_queue.transport import DeferredTransactionError, publish_on, sqlite_engine

from ..databases import sqlite_deferred_engine
from .crash_app import app, work
from .processes import wait_for
from .test_worker_crash import Runs

pytestmark = pytest.mark.acceptance

TRANSACTIONS = 60
# The worker drains this backlog during the whole run: claims and acks every few milliseconds.
BACKLOG = 2000
BACKLOG_TASK_S = 0.02
# A request's own work between its first read and its publish.
REQUEST_WORK_S = 0.02


def _count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql(sql).scalar_one())


def _requests(engine: sa.Engine, broker_url: str) -> list[Exception]:
    """60 requests, each one transaction: read, work, publish a task, record the order."""
    failures: list[Exception] = []
    with app.connection_for_write(broker_url) as broker:
        for number in range(TRANSACTIONS):
            try:
                with engine.begin() as connection:
                    connection.exec_driver_sql("SELECT count(*) FROM orders").scalar_one()
                    time.sleep(REQUEST_WORK_S)
                    with publish_on(connection):
                        work.apply_async(args=(number, 0.0), queue="app", connection=broker)
                    connection.exec_driver_sql(f"INSERT INTO orders (number) VALUES ({number})")
            except Exception as exc:  # counted and checked by the test
                failures.append(exc)
    return failures


@pytest.mark.parametrize(
    "make_engine", [sqlite_engine, sqlite_deferred_engine], ids=["helper", "recipe"]
)
def test_sqlite_transactions__publish_while_a_worker_drains(
    sqlite_url: str,
    runs: Runs,
    start_worker_on: Callable[..., object],
    make_engine: Callable[[str], sa.Engine],
) -> None:
    broker_url = "linkmq+" + sqlite_url
    engine = make_engine(sqlite_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE orders (number INTEGER)")
        with app.connection_for_write(broker_url) as broker:
            for number in range(BACKLOG):
                app.send_task(
                    "crash.work", args=(10_000 + number, BACKLOG_TASK_S), connection=broker
                )
        start_worker_on(broker_url, runs, "threads", 2)
        wait_for(lambda: sum(runs.events("done").values()) >= 10, 60, "the worker to drain")

        failures = _requests(engine, broker_url)

        # The worker drained during the whole run.
        assert _count(engine, "SELECT count(*) FROM linkmq_message WHERE queue = 'celery'") > 0
        published = _count(engine, "SELECT count(*) FROM linkmq_message WHERE queue = 'app'")
        orders = _count(engine, "SELECT count(*) FROM orders")
    finally:
        engine.dispose()

    if make_engine is sqlite_engine:
        assert failures == []
    else:
        assert failures, "no deferred transaction met the worker's writes: the test proves nothing"
        assert {type(failure) for failure in failures} == {DeferredTransactionError}
        assert "sqlite_engine(url)" in str(failures[0])
    # A refused publish rolled back its whole request, and nothing else was lost.
    assert published == orders == TRANSACTIONS - len(failures)
