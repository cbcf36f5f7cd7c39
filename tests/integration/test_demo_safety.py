"""``link-mq demo`` on a database that is not its own (an application's, exported in
LINK_MQ_DATABASE_URL as the README's Quick start does): it refuses while the application's
queue holds messages or its processes run, and changes nothing there. It once deleted them as
"what an interrupted run left" and made its ``demo_user`` table in the application's database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import kombu
import pytest
import sqlalchemy as sa

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.cli import main
from link_message_queue.db import process_tables, queue_tables
from link_message_queue.settings import VARIABLES

pytestmark = pytest.mark.postgres

QUEUE = "link_processing_queue"  # the demo's queue: LINK_MQ_QUEUE's default
PREFIX = "linkmq_"


@pytest.fixture
def app_database(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[sa.Engine]:
    """The application's database, exported as LINK_MQ_DATABASE_URL (and nothing else of
    LINK_MQ_*), its queue and processes emptied; the working directory a fresh folder."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LINK_MQ_DATABASE_URL", postgres_url)
    monkeypatch.chdir(tmp_path)
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    assert main(["db", "upgrade"]) == 0
    tables = process_tables(PREFIX)
    with engine.begin() as connection:
        connection.execute(sa.delete(queue_tables(PREFIX).message))
        connection.execute(sa.delete(tables.task))
        connection.execute(sa.delete(tables.process))
    yield engine
    engine.dispose()


def _queued(engine: sa.Engine) -> int:
    message = queue_tables(PREFIX).message
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count()).select_from(message).where(message.c.queue == QUEUE)
            ).scalar_one()
        )


def _statuses(engine: sa.Engine) -> list[str]:
    process = process_tables(PREFIX).process
    with engine.connect() as connection:
        return list(connection.execute(sa.select(process.c.status)).scalars())


def _assert_untouched(engine: sa.Engine, folder: Path) -> None:
    """Nothing of the demo's was made: no ``demo_user`` table, no CSV file."""
    assert not sa.inspect(engine).has_table("demo_user")
    assert not (folder / "demo_users.csv").exists()


def test_demo__refuses_an_application_database_with_queued_messages(
    app_database: sa.Engine, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the application's database with two of its messages on the demo's queue
    with kombu.Connection(f"linkmq+{postgres_url}") as connection:
        with closing(connection.SimpleQueue(QUEUE)) as queue:
            queue.put({"app": 1})
            queue.put({"app": 2})
    assert _queued(app_database) == 2

    # When the demo runs with that database exported
    code = main(["demo", "--users", "3", "--chunk", "3"])

    # Then it stops with a demo error saying how many, where and what to do
    error = capsys.readouterr().err
    assert code == 2, error
    assert error.startswith("link-mq: demo: not run: database postgresql+psycopg://"), error
    assert "2 queued messages on queue 'link_processing_queue'" in error
    assert "0 running workflow processes" in error
    assert "Unset LINK_MQ_DATABASE_URL" in error
    # and the application's messages are still there, and nothing was made
    assert _queued(app_database) == 2
    _assert_untouched(app_database, tmp_path)


def test_demo__refuses_an_application_database_with_running_processes(
    app_database: sa.Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the application's database with one of its workflow processes running (its next
    # message not queued yet), named as the demo's own start message would be
    process = process_tables(PREFIX).process
    with app_database.begin() as connection:
        connection.execute(
            sa.insert(process).values(
                id=str(uuid.uuid4()),
                task_list_id=str(uuid.uuid4()),
                name="app-import",
                process_type="linear_messaging",
                definition="{}",
                status="running",
                started_at=time.time(),
            )
        )

    # When the demo runs with that database exported
    code = main(["demo", "--users", "3", "--chunk", "3"])

    # Then it refuses, and the process still runs
    error = capsys.readouterr().err
    assert code == 2, error
    assert "0 queued messages" in error, error
    assert "1 running workflow processes" in error
    assert _statuses(app_database) == ["running"]
    _assert_untouched(app_database, tmp_path)
