"""``link-mq db upgrade`` on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from link_message_queue.cli import main
from link_message_queue.db.schema import SCHEMA_REVISION


def test_cli_db_upgrade__creates_the_tables_and_is_idempotent(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINK_MQ_TABLE_PREFIX", "cli_")

    assert main(["db", "upgrade", "--database-url", database_url]) == 0
    assert main(["db", "upgrade", "--database-url", database_url]) == 0

    assert capsys.readouterr().out.count(f"schema revision {SCHEMA_REVISION}") == 2
    engine = sa.create_engine(database_url)
    try:
        assert {"cli_message", "cli_queue", "cli_dead_letter", "cli_alembic_version"} <= set(
            sa.inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", [["status"], ["metrics"], ["dead-letters", "list"]])
def test_cli__reading_an_unmigrated_database_says_to_run_db_upgrade(
    database_url: str,
    command: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The worker's check: SQLite (the embedded default) creates the tables, elsewhere the
    # command says what to run instead of "relation … does not exist".
    monkeypatch.setenv("LINK_MQ_DATABASE_URL", database_url)
    monkeypatch.setenv("LINK_MQ_TABLE_PREFIX", "unmigrated_")

    code = main(command)

    err = capsys.readouterr().err
    if database_url.startswith("sqlite"):
        assert (code, err) == (0, "")
    else:
        assert code == 2
        assert "has no queue tables under prefix 'unmigrated_'" in err
        assert "run `link-mq db upgrade`" in err
        assert "does not exist" not in err
