"""``send_many`` with a real ``celery worker`` on linkmq+ (SQLite file and PostgreSQL): the
worker runs every call of a committed batch once, and none of a rolled-back one."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from celery import Celery

from link_message_queue import send_many
from link_message_queue.transport import sqlite_engine

from .processes import wait_for
from .test_worker_crash import Runs

pytestmark = pytest.mark.acceptance

COMMITTED = 200


def test_send_many__a_real_worker_runs_the_committed_batch_only(
    broker_url: str, runs: Runs, start_worker: object
) -> None:
    # Given a client app with the worker's task (tests/acceptance/crash_app.py)
    client = Celery("send-many-client", broker=broker_url)
    client.conf.update(task_serializer="json", task_default_queue="celery")

    @client.task(name="crash.work", shared=False)
    def work(number: int, duration_s: float) -> None:
        raise AssertionError("runs on the worker only")

    with client.producer_or_acquire() as producer:
        producer.channel  # noqa: B018  (connects and migrates outside the caller's transaction)
    database_url = broker_url.removeprefix("linkmq+")
    engine = (
        sqlite_engine(database_url)
        if database_url.startswith("sqlite")
        else sa.create_engine(database_url)
    )
    # When one batch commits and another rolls back
    with engine.begin() as connection:
        send_many(work, [(number, 0.0) for number in range(COMMITTED)], connection)
    with engine.connect() as connection:
        transaction = connection.begin()
        send_many(work, [(number, 0.0) for number in range(1000, 1100)], connection)
        transaction.rollback()
    engine.dispose()
    client.close()
    # Then a real worker runs each committed call exactly once, and nothing else
    worker = start_worker("prefork")  # type: ignore[operator]
    wait_for(
        lambda: sum(runs.events("done").values()) >= COMMITTED, 90, "the batch to be worked off"
    )
    worker.stop()
    done = runs.events("done")
    assert set(done) == set(range(COMMITTED))
    assert all(count == 1 for count in done.values())
