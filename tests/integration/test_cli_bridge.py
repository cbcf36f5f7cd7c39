"""``link-mq enqueue``, ``tick`` and ``dead-letters`` against a real database."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from link_message_queue.cli import main
from link_message_queue.db.schema import queue_tables
from link_message_queue.messages import WorkflowMessage, encode
from link_message_queue.settings import Settings


@pytest.fixture
def env(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(database_url, monkeypatch, tmp_path)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "mariadb"]
)
def env_with_mariadb(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As ``env``, also on MariaDB (where the dead-letter commands are supported)."""
    fixture = {"sqlite": "sqlite_url", "postgresql": "postgres_url", "mariadb": "mariadb_url"}
    _env(str(request.getfixturevalue(fixture[request.param])), monkeypatch, tmp_path)


def _env(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LINK_MQ_DATABASE_URL", database_url)
    monkeypatch.setenv(
        "LINK_MQ_TABLE_PREFIX", f"cli{tmp_path.name[-6:].lower().replace('-', '_')}_"
    )
    monkeypatch.setenv("LINK_MQ_MAX_ATTEMPTS", "1")
    monkeypatch.delenv("LINK_MQ_CONFIG", raising=False)
    if not database_url.startswith("sqlite"):
        assert main(["db", "upgrade"]) == 0


def test_cli__enqueue_tick_dead_letter_requeue_purge(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a message for a target nobody serves
    message = WorkflowMessage.collect_data_of("Acme\\User", "localhost", "Nobody\\Home")
    path = tmp_path / "message.json"
    path.write_text(encode(message))

    assert main(["enqueue", str(path)]) == 0
    assert f"queued {message.name} {message.uuid}" in capsys.readouterr().out

    # When a tick runs a consumer step, the message is poison: dead-lettered at once
    assert main(["tick"]) == 0
    assert json.loads(capsys.readouterr().out)["dead_lettered"] == 1

    assert main(["dead-letters", "list"]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split()[0] == "id"
    assert "poison" in line
    assert message.name in line
    letter_id = int(line.split()[0])

    assert main(["dead-letters", "show", str(letter_id)]) == 0
    readable = capsys.readouterr().out
    assert f"message uuid:  {message.uuid}" in readable
    assert "Traceback" in readable
    assert main(["dead-letters", "show", str(letter_id), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["message_uuid"] == str(message.uuid)
    assert "Nobody" in shown["exception_message"]

    assert main(["dead-letters", "requeue", str(letter_id)]) == 0
    assert "link-mq: requeued 1 dead letter\n" in capsys.readouterr().out
    assert main(["tick"]) == 0
    assert json.loads(capsys.readouterr().out)["dead_lettered"] == 1
    capsys.readouterr()

    assert main(["dead-letters", "requeue", "999999"]) == 1
    assert "no dead letters with ids [999999]" in capsys.readouterr().err
    assert main(["dead-letters", "purge"]) == 0
    assert "deleted 1" in capsys.readouterr().out

    monkeypatch.setattr("sys.stdin", io.StringIO("{not json"))
    assert main(["enqueue", "-"]) == 2
    assert "the message is invalid: body" in capsys.readouterr().err


def test_cli__two_concurrent_requeue_all_runs_requeue_each_dead_letter_once(
    env_with_mariadb: None,
) -> None:
    # Given 1000 dead letters (enough that the two runs overlap however they start)
    assert main(["db", "upgrade"]) == 0
    settings = Settings.from_env(os.environ)
    tables = queue_tables(settings.table_prefix)
    engine = sa.create_engine(settings.database_url)
    bodies = [encode(_message(number)) for number in range(1000)]
    with engine.begin() as connection:
        connection.execute(
            sa.insert(tables.dead_letter),
            [
                {
                    "queue": settings.queue,
                    "body": body,
                    "reason": "poison",
                    "exception_type": "builtins.LookupError",
                    "exception_message": "nobody home",
                    "traceback": "",
                    "attempts": 1,
                    "failed_at": time.time(),
                }
                for body in bodies
            ],
        )

    # When two `link-mq dead-letters requeue --all` run at once
    command = [sys.executable, "-m", "link_message_queue.cli", "dead-letters", "requeue", "--all"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]

    # Then both succeed, each reports what it took, and those add up to every letter, once
    assert [run.returncode for run in runs] == [0, 0]
    reported = [_requeued_count(out) for out in outputs]
    assert sum(reported) == 1000, outputs
    assert _rows(engine, tables.dead_letter) == 0
    assert _rows(engine, tables.message) == 1000
    engine.dispose()


def _requeued_count(output: str) -> int:
    found = re.fullmatch(r"link-mq: requeued (\d+) dead letters?\n", output)
    assert found is not None, output
    return int(found[1])


def _rows(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _message(number: int) -> WorkflowMessage:
    return WorkflowMessage.collect_data_of("Acme\\User", "localhost", f"Nobody\\Home{number}")
