"""The grouped task events' sender (``task_events``) on a real SQLite transport: a group whose
send fails is logged and kept, and goes out whole once the database takes writes again."""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import closing

import kombu
import pytest
from celery import Celery

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.monitoring.task_events import _Flusher


def test_task_events__a_group_refused_by_the_database_is_logged_kept_and_sent_later(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker_url = "linkmq+" + sqlite_url
    # Transient messages written at once (not by the batching thread), so a refused write
    # reaches the sender; a short busy timeout, so the lock held below refuses it quickly.
    options = {"busy_timeout_s": 0.1, "batch_transient": False}
    app = Celery("task-events-test", broker=broker_url)
    app.conf.broker_transport_options = options
    events = kombu.Exchange("celeryev", type="topic")
    with kombu.Connection(broker_url, transport_options=options) as connection:
        receiver = kombu.Queue("monitor", exchange=events, routing_key="#")
        with closing(connection.SimpleQueue(receiver)) as monitor:
            dispatcher = app.events.Dispatcher(
                connection,
                hostname="grouped@test",
                buffer_while_offline=False,  # let a failed publish raise to the sender
                buffer_group=["task"],
                buffer_limit=1000,
            )
            flusher = _Flusher(dispatcher, interval_s=0.05)
            dispatcher.on_send_buffered = flusher.wake
            flusher.start()
            lock = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
            try:
                lock.execute("BEGIN IMMEDIATE")
                with caplog.at_level(
                    logging.ERROR, logger="link_message_queue.monitoring.task_events"
                ):
                    for uuid in ("a", "b", "c"):
                        dispatcher.send("task-succeeded", uuid=uuid)
                    deadline = time.monotonic() + 10
                    while "sending grouped task events failed" not in caplog.text:
                        assert time.monotonic() < deadline, "the refused send was not logged"
                        time.sleep(0.02)
                lock.execute("ROLLBACK")

                group = monitor.get(timeout=10)
                group.ack()
            finally:
                lock.close()
                flusher.stop()
            with pytest.raises(monitor.Empty):
                monitor.get(timeout=0.3)

    assert group.delivery_info["routing_key"] == "task.multi"
    assert [event["uuid"] for event in group.payload] == ["a", "b", "c"]
    assert "OperationalError" in caplog.text
