"""``link-mq demo``: the whole system on the embedded default, in one command.

It starts a real ``celery worker`` and ``celery beat`` on a SQLite file in the working
directory, dispatches users as workflow messages through a channel whose dispatcher is the
producer, shows progress until every message is handled, prints a summary and stops its
processes (also on Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from celery import Celery

from .bridge.runtime import build_runtime
from .celery_config import celery_config
from .demo_workflow import ARCHIVE, NODE, USER_TYPE, archive_table, metadata
from .messages import Payload, TaskListPosition, WorkflowMessage
from .settings import Settings
from .transport import upgrade
from .transport.engines import engine_for, masked
from .transport.options import TransportOptions

# The demo's own pace unless the environment says otherwise: fast ticks, several messages each.
DEMO_ENVIRONMENT = {
    "LINK_MQ_CONFIG": "link_message_queue.demo_workflow",
    "LINK_MQ_TICK_INTERVAL": "0.2",
    "LINK_MQ_MESSAGES_PER_TICK": "20",
    "LINK_MQ_RETRY_BACKOFF_S": "0.5",
}
_BAR_WIDTH = 30


@dataclass
class DemoSummary:
    dispatched: int
    processed: int
    retried: int
    dead_lettered: int
    elapsed_s: float

    @property
    def messages_per_s(self) -> float:
        return self.processed / self.elapsed_s if self.elapsed_s else 0.0


def run_demo(
    messages: int = 50,
    timeout_s: float = 120.0,
    say: Callable[[str], None] = print,
    environ: Mapping[str, str] | None = None,
) -> DemoSummary:
    env = {**DEMO_ENVIRONMENT, **(os.environ if environ is None else environ)}
    env = {**env, "LINK_MQ_CONFIG": DEMO_ENVIRONMENT["LINK_MQ_CONFIG"]}
    settings = Settings.from_env(env)
    engine = engine_for(settings.database_url, TransportOptions(table_prefix=settings.table_prefix))
    upgrade(engine, settings.table_prefix)
    metadata.drop_all(engine)  # the demo's own table: each run starts empty
    metadata.create_all(engine)
    say(
        f"demo: database {masked(settings.database_url)}, queue {settings.queue!r}, a tick "
        f"every {settings.tick_interval_s} s, up to {settings.messages_per_tick} messages a tick"
    )

    with tempfile.TemporaryDirectory(prefix="link-mq-demo-") as workdir:
        processes = _start_celery(env, Path(workdir))
        try:
            started = time.monotonic()
            dead_before = _dead_letters(engine, settings)
            _dispatch_users(settings, messages)
            say(f"demo: dispatched {messages} workflow messages through channel 'demo_queue'")
            summary = _watch(
                engine,
                settings,
                total=messages,
                dead_before=dead_before,
                started=started,
                timeout_s=timeout_s,
                processes=processes,
            )
        finally:
            _stop(processes)
    say(
        f"demo: {summary.processed} processed, {summary.retried} retried, "
        f"{summary.dead_lettered} dead-lettered in {summary.elapsed_s:.1f} s "
        f"({summary.messages_per_s:.1f} messages/s)"
    )
    return summary


def _dispatch_users(settings: Settings, count: int) -> None:
    app = Celery("link-mq-demo")
    app.conf.update(celery_config(settings))
    runtime = build_runtime(app, settings)
    position = TaskListPosition.new(NODE)
    for user_id in range(1, count + 1):
        message = WorkflowMessage.new_data_collected(
            Payload(USER_TYPE, {"id": user_id, "name": f"user-{user_id}"}), ARCHIVE, NODE
        ).prepare_data_processing(position, ARCHIVE)
        runtime.workflow_engine.dispatch(message)


def _start_celery(env: Mapping[str, str], workdir: Path) -> list[subprocess.Popen[bytes]]:
    base = [sys.executable, "-m", "celery", "-A", "link_message_queue.celery_app"]
    log = (workdir / "celery.log").open("ab")
    commands = [
        [
            *base,
            "worker",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
        ],
        [*base, "beat", "--loglevel", "WARNING", "--schedule", str(workdir / "beat-schedule")],
    ]
    return [
        subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        for command in commands
    ]


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _watch(
    engine: sa.Engine,
    settings: Settings,
    *,
    total: int,
    dead_before: int,
    started: float,
    timeout_s: float,
    processes: list[subprocess.Popen[bytes]],
) -> DemoSummary:
    while True:
        with engine.connect() as connection:
            processed, retried = connection.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(
                        sa.func.sum(sa.case((archive_table.c.attempt > 1, 1), else_=0)), 0
                    ),
                ).select_from(archive_table)
            ).one()
        dead = _dead_letters(engine, settings) - dead_before
        _progress(int(processed) + dead, total)
        elapsed = time.monotonic() - started
        if int(processed) + dead >= total or elapsed > timeout_s:
            sys.stderr.write("\n")
            return DemoSummary(total, int(processed), int(retried), dead, elapsed)
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"a Celery process stopped early (exit code {process.returncode})"
                )
        time.sleep(0.1)


def _dead_letters(engine: sa.Engine, settings: Settings) -> int:
    table = sa.table(f"{settings.table_prefix}dead_letter")
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _progress(done: int, total: int) -> None:
    filled = _BAR_WIDTH * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {done}/{total}")
    sys.stderr.flush()
