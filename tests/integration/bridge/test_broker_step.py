"""Tick mode and the relay against a real Redis (127.0.0.1:6379) with the application database
on SQLite: a pickled task and a failing handler on the broker path, and a relay whose broker
does not answer."""

from __future__ import annotations

import uuid
from pathlib import Path

import kombu
import pytest
import redis
import sqlalchemy as sa
from celery import Celery

from link_message_queue.bridge.taskbody import WORKFLOW_TASK
from link_message_queue.celery_config import celery_config
from link_message_queue.messages import encode
from link_message_queue.runtime import Runtime, WorkflowConfig, build_runtime
from link_message_queue.settings import Settings
from link_message_queue.transport import upgrade

from ...databases import require_service
from .test_bridge import HANDLER, Recorder, _item, records

REDIS = "redis://127.0.0.1:6379/12"


def _runtime(tmp_path: Path, broker: str, recorder: Recorder) -> Runtime:
    database_url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    settings = Settings.from_env(
        {
            "LINK_MQ_DATABASE_URL": database_url,
            "LINK_MQ_BROKER_URL": broker,
            "LINK_MQ_QUEUE": f"q_{uuid.uuid4().hex[:8]}",
            "LINK_MQ_MAX_ATTEMPTS": "3",
            "LINK_MQ_MESSAGES_PER_TICK": "10",
        }
    )
    engine = sa.create_engine(database_url)
    upgrade(engine, settings.table_prefix)
    records.create(engine, checkfirst=True)
    engine.dispose()
    app = Celery("broker-step-test")
    app.conf.update(celery_config(settings))
    config = WorkflowConfig({"local": {"targets": [HANDLER]}}, {HANDLER: recorder}, False)
    return build_runtime(app, settings, config)


@pytest.fixture
def redis_up() -> None:
    require_service("Redis", 6379)


@pytest.mark.usefixtures("redis_up")
def test_broker_step__poison_is_dead_lettered_and_a_failure_retried_through_the_outbox(
    tmp_path: Path,
) -> None:
    recorder = Recorder(fail={1: 1})
    runtime = _runtime(tmp_path, REDIS, recorder)
    queue = runtime.settings.queue
    app = runtime.producer.app
    # Straight onto the broker, as a careless producer would: pickled, and a good one that
    # fails on its first attempt.
    app.send_task(WORKFLOW_TASK, args=({"x": 1},), queue=queue, serializer="pickle")
    app.send_task(WORKFLOW_TASK, args=(encode(_item(1)),), queue=queue)

    result = runtime.step.run(10)

    assert (result.dead_lettered, result.retried, result.processed) == (1, 1, 0)
    (letter,) = runtime.dead_letters.recent()
    assert letter.reason == "poison"
    assert "only JSON is accepted" in letter.exception_message
    (retry,) = runtime.outbox.oldest(10)
    assert (retry.queue, retry.retries) == (queue, 1)
    assert retry.countdown_s is not None
    assert retry.countdown_s > 0
    client = redis.Redis.from_url(REDIS)
    assert client.llen(queue) == 0  # both were taken and acknowledged: nothing stuck
    assert client.hlen("unacked") == 0
    client.close()


def test_relay__an_unreachable_broker_raises_and_keeps_the_rows(tmp_path: Path) -> None:
    # Nothing listens on port 1.
    runtime = _runtime(tmp_path, "redis://127.0.0.1:1/0", Recorder())
    runtime.producer.app.conf.broker_connection_timeout = 0.5
    runtime.producer.app.conf.task_publish_retry_policy = {"max_retries": 1, "interval_start": 0}
    runtime.producer.dispatch(_item(1))
    runtime.producer.dispatch(_item(2))
    with pytest.raises((OSError, kombu.exceptions.OperationalError)):
        runtime.relay.run_once()
    assert runtime.outbox.size() == 2
