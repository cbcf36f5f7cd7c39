"""The workflow processor through the real queue (tick mode: consumer steps in this process)
on a real SQLite file and a real PostgreSQL: linear, for-each and chunk processes to the end,
a failing handler, duplicates ignored, state rolled back with a failed step."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from celery import Celery

from link_message_queue import cli
from link_message_queue.celery_config import celery_config
from link_message_queue.db.schema import process_tables
from link_message_queue.messages import Payload, TaskListPosition, WorkflowMessage
from link_message_queue.processor.connectors import CsvSource, SqlTableSource, SqlTableTarget
from link_message_queue.processor.state import ProcessState
from link_message_queue.runtime import Runtime, WorkflowConfig, build_runtime
from link_message_queue.settings import Settings
from link_message_queue.transport import upgrade
from tests import processor_workflow as workflow


@pytest.fixture
def runtime(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    csv_path = tmp_path / "users.csv"
    workflow.write_users_csv(str(csv_path), 25)
    settings = Settings.from_env(
        {
            "LINK_MQ_DATABASE_URL": database_url,
            "LINK_MQ_MAX_ATTEMPTS": "2",
            "LINK_MQ_RETRY_BACKOFF_S": "0.001",
            "LINK_MQ_LEASE_S": "5",
            "LINK_MQ_TABLE_PREFIX": f"t{uuid.uuid4().hex[:8]}_",
        }
    )
    app = Celery("processor-test")
    app.conf.update(celery_config(settings))
    engine = sa.create_engine(database_url)
    upgrade(engine, settings.table_prefix)
    workflow.app_user.drop(engine, checkfirst=True)
    workflow.app_user.create(engine)
    engine.dispose()
    services = {
        workflow.SOURCE: CsvSource(csv_path, workflow.TYPES),
        workflow.TARGET: workflow.SlowOrFailingTarget("app_user", workflow.TYPES),
    }
    config = WorkflowConfig(
        workflow.CHANNELS, services, True, (), workflow.PROCESSES, workflow.TYPES
    )
    return build_runtime(app, settings, config)


def _run_until_idle(runtime: Runtime, max_steps: int = 500) -> int:
    """Consumer steps until the queue is empty; how many messages they handled."""
    handled = 0
    for _ in range(max_steps):
        result = runtime.step.run(1)
        assert not result.errors, result.errors
        if runtime.store.messages.size(runtime.settings.queue) == 0 and not result.processed:
            return handled
        handled += result.processed
    raise AssertionError("the queue never ran empty")


def _users(runtime: Runtime) -> list[int]:
    with runtime.store.engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(workflow.app_user.c.id).order_by(workflow.app_user.c.id)
            ).scalars()
        )


def _processes(runtime: Runtime) -> list[tuple[str, str | None, str]]:
    state = ProcessState(process_tables(runtime.settings.table_prefix))
    with runtime.store.engine.connect() as connection:
        return [
            (row.status, row.parent_position, row.process_type)
            for row in state.processes(connection, limit=1000)
        ]


def _start(runtime: Runtime, message: WorkflowMessage) -> None:
    runtime.producer.dispatch(message)


def test_processor__linear_process_collects_and_writes_every_user(runtime: Runtime) -> None:
    _start(runtime, workflow.start_linear())
    handled = _run_until_idle(runtime)
    assert _users(runtime) == list(range(1, 26))
    assert _processes(runtime) == [("succeeded", None, "linear_messaging")]
    # start, collect-data, process-data: each went through the queue.
    assert handled == 3


def test_processor__for_each_runs_a_sub_process_per_item(runtime: Runtime) -> None:
    _start(runtime, workflow.start_for_each(7))
    handled = _run_until_idle(runtime)
    assert _users(runtime) == list(range(1, 8))
    processes = _processes(runtime)
    assert sorted(status for status, _, _ in processes) == ["succeeded"] * 8
    assert sum(parent is not None for _, parent, _ in processes) == 7
    # start, then per item a StartSubProcess and a process-data.
    assert handled == 1 + 7 * 2


def test_processor__chunk_process_runs_a_sub_process_per_chunk(runtime: Runtime) -> None:
    _start(runtime, workflow.start_chunks(total=25, limit=10))
    handled = _run_until_idle(runtime)
    assert _users(runtime) == list(range(1, 26))
    processes = _processes(runtime)
    assert len(processes) == 4  # the chunk process and 3 chunks: 10 + 10 + 5
    assert {status for status, _, _ in processes} == {"succeeded"}
    # start, then per chunk a StartSubProcess, a collect-data and a process-data.
    assert handled == 1 + 3 * 3


def test_processor__a_failing_handler_fails_its_task_and_the_process(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINK_MQ_TEST_FAIL_EMAIL", "user13@example.com")
    _start(runtime, workflow.start_chunks(total=25, limit=10))
    _run_until_idle(runtime)
    # The chunk with user 13 wrote nothing (its savepoint rolled back); the others did.
    assert _users(runtime) == [*range(1, 11), *range(21, 26)]
    processes = _processes(runtime)
    parent = [status for status, parent, _ in processes if parent is None]
    children = sorted(status for status, parent, _ in processes if parent is not None)
    assert parent == ["failed"]
    assert children == ["failed", "succeeded", "succeeded"]
    state = ProcessState(process_tables(runtime.settings.table_prefix))
    with runtime.store.engine.connect() as connection:
        failed_child = next(
            row
            for row in state.processes(connection, 100)
            if row.parent_position and row.status == "failed"
        )
        tasks = state.tasks(connection, failed_child.id)
    assert [task.status for task in tasks] == ["succeeded", "failed"]
    assert "refusing to import user13@example.com" in tasks[1].log[-1]["message"]
    assert tasks[1].log[-1]["level"] == "error"
    # Nothing was dead-lettered: a business failure is the process's, not the queue's.
    assert runtime.dead_letters.count() == 0


def test_processor__an_unknown_start_message_is_dead_lettered_with_its_reason(
    runtime: Runtime,
) -> None:
    unknown = WorkflowMessage.collect_data_of("Acme\\Type\\Nothing", "test-trigger", "localhost")
    _start(runtime, unknown)
    deadline = time.monotonic() + 10
    while runtime.dead_letters.count() == 0 and time.monotonic() < deadline:
        runtime.step.run(1)  # attempt 1 fails and is retried after the back-off; 2 gives up
        time.sleep(0.01)
    assert _processes(runtime) == []
    letters = runtime.dead_letters.recent()
    assert len(letters) == 1
    assert "no process starts with processing-message-acmetypenothing-collect-data" in (
        letters[0].exception_message
    )


def test_cli__processes_list_and_show_every_task_with_its_log(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LINK_MQ_TEST_FAIL_EMAIL", "user3@example.com")
    _start(runtime, workflow.start_linear())
    _run_until_idle(runtime)
    monkeypatch.setenv("LINK_MQ_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("LINK_MQ_TABLE_PREFIX", runtime.settings.table_prefix)

    assert cli.main(["processes", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2  # the header and the one process
    process_id, status, process_type = listed[1].split("\t")[:3]
    assert (status, process_type) == ("failed", "linear_messaging")

    assert cli.main(["processes", "show", process_id[:8]]) == 0
    shown = capsys.readouterr().out
    assert f"process {process_id}: failed" in shown
    assert "1. collect_data: succeeded" in shown
    assert "2. process_data: failed" in shown
    assert "error 500: refusing to import user3@example.com" in shown

    assert cli.main(["processes", "show", process_id, "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert [task["status"] for task in as_json["tasks"]] == ["succeeded", "failed"]
    assert as_json["sub_processes"] == []

    assert cli.main(["processes", "show", "nonexistent"]) == 1
    assert "no process" in capsys.readouterr().err


def test_cli__processes_show_names_the_sub_processes_each_task_started(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A chunked import with one failing chunk: show the parent, then follow the failed child.
    monkeypatch.setenv("LINK_MQ_TEST_FAIL_EMAIL", "user13@example.com")
    _start(runtime, workflow.start_chunks(total=25, limit=10))
    _run_until_idle(runtime)
    monkeypatch.setenv("LINK_MQ_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("LINK_MQ_TABLE_PREFIX", runtime.settings.table_prefix)
    assert cli.main(["processes", "list"]) == 0
    parent_id = capsys.readouterr().out.splitlines()[1].split("\t")[0]

    assert cli.main(["processes", "show", parent_id, "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    children = {child["id"]: child["status"] for child in as_json["sub_processes"]}
    assert sorted(children.values()) == ["failed", "succeeded", "succeeded"]
    # Each child under the task that started it.
    started = [id_ for task in as_json["tasks"] for id_ in task["sub_process_ids"]]
    assert sorted(started) == sorted(children)

    assert cli.main(["processes", "show", parent_id]) == 0
    shown = capsys.readouterr().out.splitlines()
    listed = [
        line.split()[1].rstrip(":") for line in shown if line.lstrip().startswith("sub-process ")
    ]
    failed_id = next(id_ for id_, status in children.items() if status == "failed")
    assert listed[0] == failed_id  # failed first
    assert sorted(listed) == sorted(children), shown
    assert cli.main(["processes", "show", failed_id]) == 0
    assert "refusing to import user13@example.com" in capsys.readouterr().out


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_processor__task_log_times_are_by_the_database_clock(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker whose host clock is an hour behind the database server's: the log's times must
    # sit with the process's started/finished times (database clock), not an hour before them.
    monkeypatch.setenv("LINK_MQ_TEST_FAIL_EMAIL", "user3@example.com")
    real_time = time.time
    with monkeypatch.context() as shifted:
        shifted.setattr(time, "time", lambda: real_time() - 3600)
        _start(runtime, workflow.start_linear())
        _run_until_idle(runtime)
    state = ProcessState(process_tables(runtime.settings.table_prefix))
    with runtime.store.engine.connect() as connection:
        (process,) = state.processes(connection)
        tasks = state.tasks(connection, process.id)

    stamps = [entry["at"] for task in tasks for entry in task.log]
    assert stamps  # the failed task logged its error
    assert process.finished_at is not None
    assert all(process.started_at - 1 <= at <= process.finished_at + 1 for at in stamps)


def test_processor__a_duplicate_or_late_answer_is_ignored(runtime: Runtime) -> None:
    _start(runtime, workflow.start_linear())
    _run_until_idle(runtime)
    state = ProcessState(process_tables(runtime.settings.table_prefix))
    with runtime.store.engine.connect() as connection:
        (process,) = state.processes(connection)
    position = TaskListPosition(
        "localhost", uuid.UUID(process.id), uuid.UUID(process.task_list_id), 1
    )
    # The source answers task 1 again, after the process ended: nothing moves, nothing fails.
    again = WorkflowMessage.collect_data_of(
        workflow.USERS, origin="localhost", target=workflow.SOURCE
    ).connect_to_process_task(position)
    late = again.answer_with(Payload(workflow.USERS, []))
    runtime.workflow_engine.dispatch(late)
    assert _processes(runtime) == [("succeeded", None, "linear_messaging")]
    assert _users(runtime) == list(range(1, 26))


def copy_names_upper(users: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{**user, "name": str(user["name"]).upper()} for user in users]


def test_processor__sql_source_manipulate_payload_and_sql_target(
    database_url: str, runtime: Runtime
) -> None:
    """Users copied from one application table into another, their names upper-cased on the
    way by a manipulate_payload task: SqlTableSource, a callable, SqlTableTarget."""
    copy = sa.Table(
        "app_user_copy",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(200), nullable=False),
    )
    with runtime.store.engine.begin() as connection:
        copy.drop(connection, checkfirst=True)
        copy.create(connection)
        connection.execute(
            sa.insert(workflow.app_user),
            [{"id": n, "name": f"user {n}", "email": f"u{n}@example.com"} for n in range(1, 6)],
        )
    start = WorkflowMessage.collect_data_of("Acme\\Type\\UserCopy", "test-trigger", "localhost")
    processes = {
        start.name: {
            "process_type": "linear_messaging",
            "tasks": [
                {
                    "task_type": "collect_data",
                    "source": "sql:::users",
                    "processing_type": workflow.USERS,
                },
                {"task_type": "manipulate_payload", "callable": f"{__name__}:copy_names_upper"},
                {
                    "task_type": "process_data",
                    "target": "sql:::copy",
                    "allowed_types": [workflow.USERS],
                },
            ],
        }
    }
    services = {
        "sql:::users": SqlTableSource("app_user", order_by="id", types=workflow.TYPES),
        "sql:::copy": SqlTableTarget("app_user_copy", workflow.TYPES),
    }
    config = WorkflowConfig(
        {"local": {"targets": list(services)}}, services, True, (), processes, workflow.TYPES
    )
    copying = build_runtime(runtime.producer.app, runtime.settings, config)
    copying.producer.dispatch(start)
    _run_until_idle(copying)
    with copying.store.engine.connect() as connection:
        names = connection.execute(sa.select(copy.c.name).order_by(copy.c.id)).scalars()
        assert list(names) == [f"USER {n}" for n in range(1, 6)]
    assert _processes(copying) == [("succeeded", None, "linear_messaging")]
