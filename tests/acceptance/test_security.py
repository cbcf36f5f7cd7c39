"""JSON only on every path: a pickled task reaching a real worker (worker mode) is refused and
dead-lettered with its reason, and the worker goes on with the next message."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from celery import Celery

from link_message_queue.bridge.taskbody import WORKFLOW_TASK
from link_message_queue.celery_config import celery_config
from link_message_queue.settings import Settings

from ..databases import require_service
from .processes import CeleryProcess, wait_for
from .test_bridge import _dispatch, _handled

pytestmark = pytest.mark.acceptance


def _dead_letters(url: str) -> list[sa.Row[tuple[str, str, str, str]]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(
                    sa.text(
                        "SELECT reason, message_name, exception_message, body "
                        "FROM linkmq_dead_letter ORDER BY id"
                    )
                )
            )
    finally:
        engine.dispose()


def test_security__a_pickled_task_is_dead_lettered_by_the_worker_and_work_goes_on(
    environment: dict[str, str], celery: Callable[..., CeleryProcess]
) -> None:
    url = environment["LINK_MQ_DATABASE_URL"]
    with sa.create_engine(url, poolclass=sa.pool.NullPool).begin() as connection:
        connection.execute(sa.text("DELETE FROM linkmq_dead_letter"))
    env = {**environment, "LINK_MQ_CONSUME_MODE": "worker"}
    settings = Settings.from_env(env)
    sender = Celery("pickler")
    sender.conf.update(celery_config(settings))
    # What a careless or hostile producer could send: the right task name, pickled arguments.
    pickled = {"queue": settings.queue, "serializer": "pickle"}
    sender.send_task(WORKFLOW_TASK, args=({"not": "json"},), **pickled)
    _dispatch(env, 1, sleep_s=0)

    celery("worker", "-c", "1", "--without-mingle", "--without-gossip", extra_env=env)

    wait_for(lambda: len(_dead_letters(url)) == 1, 60, "the pickled task to be dead-lettered")
    wait_for(lambda: len(_handled(url)) == 1, 60, "the next message to be handled")
    (letter,) = _dead_letters(url)
    assert letter.reason == "poison"
    assert letter.message_name == WORKFLOW_TASK
    assert "application/x-python-serialize" in letter.exception_message
    assert "only JSON is accepted" in letter.exception_message
    assert letter.body.startswith("base64:")  # kept as it came, never unpickled


def test_security__a_refused_task_the_database_cannot_take_goes_back_to_the_broker(
    tmp_path: Path,
) -> None:
    """The application database does not answer: the pickled task cannot be dead-lettered, so
    the worker hands it back to the broker (Redis) instead of dropping it."""
    require_service("Redis", 6379)
    queue = f"refused_{uuid.uuid4().hex[:8]}"
    env = {
        "LINK_MQ_DATABASE_URL": "postgresql+psycopg://app@127.0.0.1:1/app",  # nobody there
        "LINK_MQ_BROKER_URL": "redis://127.0.0.1:6379/11",
        "LINK_MQ_CONSUME_MODE": "worker",
        "LINK_MQ_QUEUE": queue,
    }
    client = redis.Redis.from_url("redis://127.0.0.1:6379/11")
    client.flushdb()  # nothing from an earlier run
    sender = Celery("pickler")
    sender.conf.update(celery_config(Settings.from_env(env)))
    sender.send_task(WORKFLOW_TASK, args=({"not": "json"},), queue=queue, serializer="pickle")
    worker = CeleryProcess(
        [
            "-A",
            "link_message_queue.celery_app",
            "worker",
            "-c",
            "1",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ],
        env=env,
        log_path=tmp_path / "worker.log",
    )
    try:
        wait_for(lambda: "goes back to the queue" in worker.log(), 60, "the worker to give it back")
    finally:
        worker.stop()
    try:
        # Back on the queue (or held as unacked for redelivery): not dropped.
        assert client.llen(queue) + client.hlen("unacked") >= 1
    finally:
        client.flushdb()
        client.close()
