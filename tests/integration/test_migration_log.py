"""Starting a process on a new database (a worker, Flower) logs what the migration did, and not
alembic's own INFO lines."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# A fresh interpreter: alembic logs a line per plugin when it is first imported, which has
# happened long ago in the test process. Logging at INFO on the root logger, as a Celery
# worker or Flower configures it.
_START = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    import kombu
    import link_message_queue
    with kombu.Connection(sys.argv[1]) as connection:
        connection.SimpleQueue("q").put("hello")
    """
)


def test_migration_log__a_first_connect_logs_the_upgrade_without_alembic_lines(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Given a new SQLite file, migrated on first connect
    # When a process logging at INFO connects to it
    done = subprocess.run(
        [sys.executable, "-c", _START, f"linkmq+{sqlite_url}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )

    # Then its log says the schema was upgraded, and nothing of alembic's
    assert done.returncode == 0, done.stderr
    assert "schema upgraded from None" in done.stderr
    assert "alembic" not in done.stderr, done.stderr
