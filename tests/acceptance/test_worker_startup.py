"""A real ``celery worker`` of link-message-queue that cannot start says why and what to do, in
one line instead of a traceback."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from .processes import CeleryProcess

pytestmark = pytest.mark.acceptance


def _refused_start(arguments: list[str], database_url: str, log_path: Path) -> str:
    """Start a real worker that must refuse to start: its log, once it has exited 1 without a
    traceback."""
    worker = CeleryProcess(
        ["-A", "link_message_queue.celery_app", *arguments, "-P", "solo"],
        env={"LINK_MQ_DATABASE_URL": database_url},
        log_path=log_path,
    )
    try:
        returncode = worker.process.wait(timeout=60)
    finally:
        worker.kill()
    log = worker.log()
    assert returncode == 1, log
    assert "Traceback" not in log
    return log


def test_worker_startup__missing_database_driver_names_the_extra(tmp_path: Path) -> None:
    if importlib.util.find_spec("pg8000") is not None:
        pytest.skip("pg8000 is installed here: the test needs a driver that is not")
    log = _refused_start(
        ["worker", "--without-mingle"],
        "postgresql+pg8000://app:secret@127.0.0.1/app",
        tmp_path / "worker.log",
    )

    assert "link-mq worker: the database driver 'pg8000'" in log
    assert "pip install 'link-message-queue[postgres]'" in log
    assert "secret" not in log


@pytest.mark.parametrize(
    ("broker", "expected"),
    [
        # kombu takes `linkmq+` for an AMQP host, and the worker retried a connection to
        # amqp://linkmq%2B:5672 (socket.gaierror) without end.
        ("linkmq+", ["link-mq worker: broker URL", "linkmq+sqlite:///path.db"]),
        # A database SQLAlchemy has no dialect for: Celery logged the start-up check's error,
        # went on and failed again at the broker connection.
        ("linkmq+nosuchdb://host/db", ["link-mq worker: ", "nosuchdb"]),
    ],
)
def test_worker_startup__linkmq_broker_without_a_database_url_names_the_expected_form(
    tmp_path: Path, broker: str, expected: list[str]
) -> None:
    log = _refused_start(
        ["-b", broker, "worker"], f"sqlite:///{tmp_path / 'app.db'}", tmp_path / "worker.log"
    )

    assert "gaierror" not in log
    assert all(text in log for text in expected), log
