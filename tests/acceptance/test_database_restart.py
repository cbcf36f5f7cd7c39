"""PostgreSQL restarted under load: producers and a real worker carry on, nothing is lost."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from ..databases import postgres_admin_url
from .crash_app import app
from .processes import wait_for
from .test_worker_crash import Runs

pytestmark = [pytest.mark.acceptance, pytest.mark.postgres]

RETRY_POLICY = {"max_retries": 60, "interval_start": 0.2, "interval_step": 0.2, "interval_max": 0.5}


def _restart_postgres() -> None:
    clusters = sorted(Path("/etc/postgresql").glob("*/main"))
    if shutil.which("pg_ctlcluster") is None or not clusters:
        pytest.skip("no local PostgreSQL cluster to restart")
    version = clusters[-1].parent.name
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _postmaster_started(url: str) -> object:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT pg_postmaster_start_time()")).scalar_one()
    finally:
        engine.dispose()


def test_database_restart__nothing_is_lost(
    migrated_postgres_url: str, tmp_path: Path, start_worker_on: object
) -> None:
    assert "127.0.0.1" in postgres_admin_url() or "localhost" in postgres_admin_url()
    broker_url = "linkmq+" + migrated_postgres_url
    runs = Runs(tmp_path / "runs.txt")
    worker = start_worker_on(broker_url, runs)  # type: ignore[operator]
    total = 300
    published = threading.Event()

    def publish() -> None:
        with app.connection_for_write(broker_url) as connection:
            for number in range(total):
                app.send_task(
                    "crash.work",
                    args=(number, 0.01),
                    connection=connection,
                    retry=True,
                    retry_policy=RETRY_POLICY,
                )
        published.set()

    producer = threading.Thread(target=publish)
    producer.start()
    wait_for(lambda: len(runs.events("done")) >= 50, 60, "the worker to get going")
    started_before = _postmaster_started(migrated_postgres_url)
    _restart_postgres()
    assert _postmaster_started(migrated_postgres_url) != started_before
    producer.join(timeout=120)
    assert published.is_set(), "the producer did not get through the restart"

    wait_for(lambda: set(runs.events("done")) == set(range(total)), 120, "every task to finish")
    worker.stop()
    assert set(runs.events("done")) == set(range(total))
    assert "OperationalError" in worker.log() or "connection" in worker.log().lower()
