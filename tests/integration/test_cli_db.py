"""``link-mq db upgrade`` on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from link_message_queue.cli import main
from link_message_queue.transport.schema import SCHEMA_REVISION


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
