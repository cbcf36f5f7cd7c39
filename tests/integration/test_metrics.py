"""Prometheus metrics over HTTP (`link-mq metrics --serve`) and live consumers in
`link-mq status`, on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path

import kombu
import pytest
import sqlalchemy as sa
from celery import Celery

from link_message_queue.celery_config import celery_config
from link_message_queue.cli import main
from link_message_queue.messages import TickOccurred
from link_message_queue.runtime import WorkflowConfig, build_runtime
from link_message_queue.settings import Settings
from link_message_queue.transport import upgrade

REPO = Path(__file__).resolve().parents[2]
SERVE = ("metrics", "--serve", "--port", "0")


@contextmanager
def _exporter(environment: dict[str, str]) -> Iterator[str]:
    """A real `link-mq metrics --serve` process; yields the banner line that names its URL."""
    with subprocess.Popen(
        [sys.executable, "-m", "link_message_queue.cli", *SERVE],
        env={**os.environ, **environment, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as exporter:
        try:
            assert exporter.stdout is not None
            yield exporter.stdout.readline()
        finally:
            exporter.terminate()


def _samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


@pytest.fixture
def prefix() -> str:
    return f"m{uuid.uuid4().hex[:8]}_"


def test_metrics__served_over_http_in_prometheus_text_format(
    database_url: str, prefix: str
) -> None:
    environment = {
        "LINK_MQ_DATABASE_URL": database_url,
        "LINK_MQ_TABLE_PREFIX": prefix,
        "LINK_MQ_QUEUE": "metrics_workflow",
    }
    upgrade(sa.create_engine(database_url, poolclass=sa.pool.NullPool), prefix)
    settings = Settings.from_env(environment)
    broker = f"linkmq+{database_url}"
    with kombu.Connection(broker, transport_options={"table_prefix": prefix}) as connection:
        with closing(connection.SimpleQueue("metrics_a")) as queue:
            for number in range(3):
                queue.put(number)
            queue.get_nowait()  # one in flight, left unacked until the connection closes
            # A tick runs a consumer step and records its lag and duration.
            app = Celery("metrics-test")
            app.conf.update(celery_config(settings))
            config = WorkflowConfig({"local": {"targets": []}}, {}, False)
            runtime = build_runtime(app, settings, config)
            runtime.ticks.publish(TickOccurred())

            with _exporter(environment) as banner:
                assert "metrics of" in banner, banner
                url = banner.rsplit(" ", 1)[1].strip()
                with urllib.request.urlopen(url, timeout=10) as response:
                    content_type = response.headers["Content-Type"]
                    body = response.read().decode()
                with pytest.raises(urllib.error.HTTPError) as missing:
                    urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=10)
                missing.value.close()
    assert missing.value.code == 404
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = _samples(body)
    assert samples['linkmq_queue_ready{queue="metrics_a"}'] == 2
    assert samples['linkmq_queue_in_flight{queue="metrics_a"}'] == 1
    assert samples['linkmq_queue_scheduled{queue="metrics_a"}'] == 0
    assert samples['linkmq_queue_oldest_message_age_seconds{queue="metrics_a"}'] >= 0
    # The workflow queue has its series before anything was published to it.
    assert samples['linkmq_queue_ready{queue="metrics_workflow"}'] == 0
    assert samples["linkmq_dead_letters"] == 0
    assert samples['linkmq_processes{status="running"}'] == 0
    assert 0 <= samples["linkmq_tick_lag_seconds"] < 60
    assert 0 <= samples["linkmq_consumer_step_duration_seconds"] < 60
    assert abs(samples["linkmq_last_tick_timestamp_seconds"] - time.time()) < 120
    assert "# TYPE linkmq_queue_ready gauge" in body
    assert "hunter" not in body


def test_status__lists_idle_live_consumers_with_their_queues(
    database_url: str,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LINK_MQ_DATABASE_URL", database_url)
    monkeypatch.setenv("LINK_MQ_TABLE_PREFIX", prefix)
    upgrade(sa.create_engine(database_url, poolclass=sa.pool.NullPool), prefix)
    broker = f"linkmq+{database_url}"
    options = {"table_prefix": prefix}
    with (
        kombu.Connection(broker, transport_options=options) as idle,
        kombu.Consumer(idle, [kombu.Queue("idle_q")], callbacks=[], accept=["json"]),
    ):
        deadline = time.monotonic() + 10
        consumers: list[dict[str, object]] = []
        while not consumers and time.monotonic() < deadline:
            with suppress(TimeoutError):
                idle.drain_events(timeout=0.2)
            assert main(["status", "--json"]) == 0
            consumers = json.loads(capsys.readouterr().out)["consumers"]
        assert consumers == [{"owner": consumers[0]["owner"], "queues": ["idle_q"], "holding": 0}]
        assert main(["status"]) == 0
        assert "holding 0  on idle_q" in capsys.readouterr().out
    # A consumer that closed is forgotten at once.
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["consumers"] == []


def test_metrics__a_database_that_does_not_answer_is_a_503_not_a_crash() -> None:
    environment = {"LINK_MQ_DATABASE_URL": "postgresql+psycopg://app:hunter2@127.0.0.1:1/app"}
    with _exporter(environment) as banner:
        assert "hunter2" not in banner
        url = banner.rsplit(" ", 1)[1].strip()
        for _ in range(2):  # and it keeps serving
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url, timeout=30)
            assert refused.value.code == 503
            refused.value.close()
