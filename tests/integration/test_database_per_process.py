"""``db.database``: one ``Database`` per database and process, and a new one in a forked child
(Celery's prefork pool), where the parent's pooled connections are never touched."""

from __future__ import annotations

import os

import sqlalchemy as sa

from link_message_queue.db import after_fork_in_child, database_for, engine_for, upgrade
from link_message_queue.transport import TransportOptions


def test_database__one_object_per_url_and_options_sharing_one_engine(sqlite_url: str) -> None:
    first = database_for(sqlite_url, TransportOptions())
    again = database_for(sqlite_url, TransportOptions(lease_s=60.0))  # not an engine option
    other_prefix = database_for(sqlite_url, TransportOptions(table_prefix="other_"))
    other_engine = database_for(sqlite_url, TransportOptions(busy_timeout_s=5.0))

    assert again is first
    assert other_prefix is not first
    assert other_prefix.engine is first.engine  # one pool for both prefixes
    assert other_prefix.tables.message.name == "other_message"
    assert other_engine.engine is not first.engine
    assert engine_for(sqlite_url, TransportOptions()) is first.engine
    assert first.dialect == "sqlite"
    assert first.table_prefix == "linkmq_"
    assert first.process_tables.process.name == "linkmq_process"
    assert not first.forked


def test_database__the_masked_url_hides_the_password(postgres_url: str) -> None:
    url = sa.make_url(postgres_url).set(password="s3cret").render_as_string(hide_password=False)

    database = database_for(url, TransportOptions())

    assert "s3cret" not in database.masked_url
    assert "***" in database.masked_url


def test_database__a_forked_child_builds_its_own_and_runs_every_fork_callback(
    sqlite_url: str,
) -> None:
    # Given a Database in use in this process and a callback for forked children
    parent = database_for(sqlite_url, TransportOptions())
    upgrade(parent.engine, parent.table_prefix)
    with parent.engine.connect() as connection:  # a pooled connection the child must not use
        connection.execute(sa.text("SELECT 1"))
    called: list[int] = []
    failing_in_child = {"now": False}

    def fails() -> None:
        if failing_in_child["now"]:  # only in this test's child: it stays registered
            raise RuntimeError("a callback that fails")

    after_fork_in_child(fails)  # registered first: the next one must run all the same
    after_fork_in_child(lambda: called.append(os.getpid()))

    # When the process forks
    read, write = os.pipe()
    failing_in_child["now"] = True
    pid = os.fork()
    failing_in_child["now"] = False
    if pid == 0:  # the child: report what it sees, then leave without running pytest's exit
        try:
            child = database_for(sqlite_url, TransportOptions())
            with child.engine.begin() as connection:
                count = connection.execute(
                    sa.select(sa.func.count()).select_from(child.tables.queue)
                )
                rows = count.scalar_one()
            report = (
                f"{parent.forked} {child is parent} {child.forked} {called == [os.getpid()]} {rows}"
            )
        except BaseException as exc:  # reported to the parent, which fails
            report = f"error {type(exc).__name__}: {exc}"
        os.write(write, report.encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        report = pipe.read()

    # Then the child saw the parent's object as forked, got a new working one, and the
    # callback ran there (not here), after one that failed
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == "True False False True 0"
    assert called == []
    assert not parent.forked
    assert database_for(sqlite_url, TransportOptions()) is parent
