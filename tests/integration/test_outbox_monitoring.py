"""The outbox (RabbitMQ/Redis brokers) in `link-mq status` and `link-mq metrics`, on a real
SQLite file and a real PostgreSQL: a relay that is not running leaves messages there, and the
monitoring must say so."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
import sqlalchemy as sa
from celery import Celery

from link_message_queue.celery_config import celery_config
from link_message_queue.cli import main
from link_message_queue.messages import Payload, WorkflowMessage
from link_message_queue.runtime import Runtime, WorkflowConfig, build_runtime
from link_message_queue.settings import Settings
from link_message_queue.transport import upgrade

from ..databases import require_service

REDIS = "redis://127.0.0.1:6379/12"
HANDLER = "Test\\Recorder"


def _runtime(monkeypatch: pytest.MonkeyPatch, database_url: str, broker_url: str) -> Runtime:
    """A runtime over tables of its own; the CLI reads the same settings from the environment."""
    environment = {
        "LINK_MQ_DATABASE_URL": database_url,
        "LINK_MQ_BROKER_URL": broker_url,
        "LINK_MQ_TABLE_PREFIX": f"o{uuid.uuid4().hex[:8]}_",
        "LINK_MQ_QUEUE": f"q_{uuid.uuid4().hex[:8]}",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env(environment)
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    upgrade(engine, settings.table_prefix)
    app = Celery("outbox-monitoring-test")
    app.conf.update(celery_config(settings))
    return build_runtime(app, settings, WorkflowConfig({}, {}, False))


def _item(number: int) -> WorkflowMessage:
    return WorkflowMessage.new_data_collected(Payload("Test\\Item", {"n": number}), HANDLER, "n1")


def _status(capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, object], str]:
    assert main(["status", "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert main(["status"]) == 0
    return as_json, capsys.readouterr().out


def _metrics(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    assert main(["metrics"]) == 0
    samples = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("linkmq_outbox_"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_outbox__status_and_metrics_show_what_waits_for_the_relay_and_since_when(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_service("Redis", 6379)
    runtime = _runtime(monkeypatch, database_url, REDIS)
    # Given two workflow messages dispatched while no relay runs (no worker, no beat)
    runtime.producer.dispatch(_item(1))
    runtime.producer.dispatch(_item(2))

    # status and metrics count them, with the oldest one's age,
    first, text = _status(capsys)
    assert first["outbox"]["pending"] == 2  # type: ignore[index]
    assert first["outbox"]["oldest_age_s"] >= 0  # type: ignore[index]
    assert "outbox: 2 pending, oldest " in text
    samples = _metrics(capsys)
    assert samples["linkmq_outbox_pending"] == 2
    assert samples["linkmq_outbox_oldest_message_age_seconds"] >= 0
    # and the age grows while nothing relays them.
    time.sleep(0.3)
    later, _ = _status(capsys)
    assert later["outbox"]["oldest_age_s"] > first["outbox"]["oldest_age_s"]  # type: ignore[index]
    assert (
        _metrics(capsys)["linkmq_outbox_oldest_message_age_seconds"]
        > (samples["linkmq_outbox_oldest_message_age_seconds"])
    )

    # When the relay publishes them (to a real Redis)
    try:
        assert runtime.relay.run_once() == 2
    finally:
        client = redis.Redis.from_url(REDIS)
        client.delete(runtime.settings.queue)
        client.close()

    # then nothing waits, and there is no age; the series are still there for an alert.
    emptied, text = _status(capsys)
    assert emptied["outbox"] == {"pending": 0, "oldest_age_s": None}
    assert "outbox: 0 pending" in text
    assert _metrics(capsys) == {
        "linkmq_outbox_pending": 0,
        "linkmq_outbox_oldest_message_age_seconds": 0,
    }


def test_outbox__not_shown_when_the_broker_is_the_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = _runtime(monkeypatch, database_url, f"linkmq+{database_url}")
    runtime.producer.dispatch(_item(1))

    as_json, text = _status(capsys)

    assert "outbox" not in as_json
    assert "outbox:" not in text
    assert _metrics(capsys) == {}


@pytest.mark.postgres
def test_outbox__the_age_is_by_the_database_clock_not_the_producers(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = _runtime(monkeypatch, postgres_url, "redis://127.0.0.1:1/0")  # never connected
    # A producer whose host clock is an hour behind the database server's
    real_time = time.time
    with monkeypatch.context() as shifted:
        shifted.setattr(time, "time", lambda: real_time() - 3600)
        runtime.producer.dispatch(_item(1))

    as_json, _ = _status(capsys)

    # The message is seconds old, not an hour.
    assert 0 <= as_json["outbox"]["oldest_age_s"] < 60  # type: ignore[index]
