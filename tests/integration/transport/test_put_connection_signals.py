"""A signal handler that closes the process's put connection while this thread's own statement
holds it (celery beat's SIGTERM handler saves its schedule and closes its broker connection):
the close must not wait for the statement it interrupted, or the process never stops."""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Any

import pytest
import sqlalchemy as sa

from link_message_queue.transport.put_connection import PutConnection


class _StoppingError(Exception):
    """What the handler raises after closing, as beat's raises SystemExit."""


@pytest.mark.timeout(20)
def test_put_connection__a_signal_handler_closing_it_mid_statement_returns(
    sqlite_url: str,
) -> None:
    engine = sa.create_engine(sqlite_url, isolation_level="AUTOCOMMIT")  # each put commits
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE put_rows (n INTEGER)")
    rings = [signal.SIGUSR1]

    def statement(row: Any) -> tuple[str, Any]:
        # The signal lands while put holds the connection (beat's did in cursor.execute, a
        # publish waiting for SQLite's write lock); its handler runs before the statement.
        if rings:
            os.kill(os.getpid(), rings.pop())
        return "INSERT INTO put_rows (n) VALUES (?)", (row,)

    puts = PutConnection(engine, statement, prepare=False)

    def handler(signum: int, frame: FrameType | None) -> None:
        puts.close()  # blocked for good on the lock its own thread held (beat: until SIGKILL)
        raise _StoppingError

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        with pytest.raises(_StoppingError):
            puts.put(1)  # type: ignore[arg-type]
    finally:
        signal.signal(signal.SIGUSR1, previous)

    # The connection is still usable afterwards, and closes normally.
    assert puts.put(2)  # type: ignore[arg-type]
    puts.close()
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT n FROM put_rows").scalars().all()
    engine.dispose()
    assert rows == [2]
