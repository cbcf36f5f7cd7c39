"""``link-mq demo``: the whole system on the embedded default, in one command.

It writes a CSV file of users into the working directory, starts a real ``celery worker``
and ``celery beat`` on a SQLite file there, and starts a workflow process that imports the
users into the application table ``demo_user`` in chunks — every step through the queue. It
shows progress until the process ends, prints the outcome and stops its processes (also on
Ctrl-C)."""

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

from .bridge.producer import Producer
from .celery_config import celery_config
from .demo_workflow import metadata, start_message, user_table, write_users_csv
from .processor.schema import process_tables
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
DEMO_CSV = "demo_users.csv"
_BAR_WIDTH = 30


@dataclass
class DemoSummary:
    users: int
    written: int
    chunks: int
    chunks_succeeded: int
    retried: int
    dead_lettered: int
    process_id: str | None
    status: str
    elapsed_s: float

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded" and self.written == self.users


def run_demo(
    users: int = 50,
    chunk: int = 10,
    timeout_s: float = 120.0,
    say: Callable[[str], None] = print,
    environ: Mapping[str, str] | None = None,
    *,
    external: bool = False,
) -> DemoSummary:
    """``external``: use the worker and beat that already run (docker compose's demo profile)
    instead of starting them."""
    env = {**DEMO_ENVIRONMENT, **(os.environ if environ is None else environ)}
    csv_path = Path(env.get("LINK_MQ_DEMO_CSV", DEMO_CSV)).resolve()
    env = {
        **env,
        "LINK_MQ_CONFIG": DEMO_ENVIRONMENT["LINK_MQ_CONFIG"],
        "LINK_MQ_DEMO_CSV": str(csv_path),
    }
    settings = Settings.from_env(env)
    engine = engine_for(settings.database_url, TransportOptions(table_prefix=settings.table_prefix))
    upgrade(engine, settings.table_prefix)
    metadata.drop_all(engine)  # the demo's own table: each run starts empty
    metadata.create_all(engine)
    write_users_csv(str(csv_path), users)
    say(
        f"demo: database {masked(settings.database_url)}, queue {settings.queue!r}, a tick "
        f"every {settings.tick_interval_s} s, up to {settings.messages_per_tick} messages a tick"
    )
    say(
        f"demo: importing {users} users from {csv_path.name} into table demo_user, "
        f"{chunk} per chunk, every step through the queue"
    )

    with tempfile.TemporaryDirectory(prefix="link-mq-demo-") as workdir:
        processes = [] if external else _start_celery(env, Path(workdir))
        try:
            started = time.monotonic()
            dead_before = _dead_letters(engine, settings)
            since = time.time()
            app = Celery("link-mq-demo")
            app.conf.update(celery_config(settings))
            Producer(app, settings.queue).dispatch(start_message(users, chunk))
            summary = _watch(
                engine,
                settings,
                users=users,
                since=since,
                dead_before=dead_before,
                started=started,
                timeout_s=timeout_s,
                processes=processes,
            )
        finally:
            _stop(processes)
    say(
        f"demo: process {summary.process_id or '-'} {summary.status}: {summary.written} of "
        f"{summary.users} users written in {summary.chunks_succeeded} of {summary.chunks} "
        f"chunks, {summary.retried} retried, {summary.dead_lettered} dead-lettered "
        f"in {summary.elapsed_s:.1f} s"
    )
    if summary.process_id:
        say(f"demo: see every task with `link-mq processes show {summary.process_id[:8]}`")
    return summary


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
    users: int,
    since: float,
    dead_before: int,
    started: float,
    timeout_s: float,
    processes: list[subprocess.Popen[bytes]],
) -> DemoSummary:
    process = process_tables(settings.table_prefix).process
    while True:
        with engine.connect() as connection:
            written, retried = connection.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count(
                        sa.distinct(sa.case((user_table.c.attempt > 1, user_table.c.message_uuid)))
                    ),
                ).select_from(user_table)
            ).one()
            runs = connection.execute(
                sa.select(process.c.id, process.c.status, process.c.parent_position).where(
                    process.c.started_at >= since
                )
            ).all()
        top = [run for run in runs if run.parent_position is None]
        chunks = [run for run in runs if run.parent_position is not None]
        dead = _dead_letters(engine, settings) - dead_before
        _progress(int(written), users)
        elapsed = time.monotonic() - started
        ended = bool(top) and top[0].status != "running"
        if ended or dead or elapsed > timeout_s:
            sys.stderr.write("\n")
            return DemoSummary(
                users=users,
                written=int(written),
                chunks=len(chunks),
                chunks_succeeded=sum(run.status == "succeeded" for run in chunks),
                retried=int(retried),
                dead_lettered=dead,
                process_id=top[0].id if top else None,
                status=top[0].status if ended else "timed out" if not dead else "stuck",
                elapsed_s=elapsed,
            )
        for child in processes:
            if child.poll() is not None:
                raise RuntimeError(f"a Celery process stopped early (exit code {child.returncode})")
        time.sleep(0.1)


def _dead_letters(engine: sa.Engine, settings: Settings) -> int:
    table = sa.table(f"{settings.table_prefix}dead_letter")
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _progress(done: int, total: int) -> None:
    filled = _BAR_WIDTH * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {done}/{total}")
    sys.stderr.flush()
