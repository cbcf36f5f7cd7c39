"""``link-mq demo``: the whole system on the embedded default, in one command.

It writes a CSV file of users into the working directory, starts a real ``celery worker``
and ``celery beat`` on a SQLite file there, and starts a workflow process that imports the
users into the application table ``demo_user`` in chunks — every step through the queue. It
shows progress until the process ends, prints the outcome and stops its processes.

On its own database — the embedded default, ``link_mq.sqlite3`` in the working directory, the
broker on it too — the demo owns its queue and its processes: each run starts from a clean state
(what an interrupted run left queued is deleted, its processes still "running" are marked
failed), so it can run again and again in the same folder. On any other database (an exported
``LINK_MQ_DATABASE_URL`` or ``LINK_MQ_BROKER_URL``) it deletes and fails nothing: it refuses to
start, before it changes anything, while that queue holds messages or a process runs there.
Ctrl-C (or SIGTERM, SIGHUP) at any moment stops the worker and beat and raises
KeyboardInterrupt."""

from __future__ import annotations

import contextlib
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

from ..bridge.producer import Producer
from ..celery_config import celery_config
from ..db import database_for, masked, process_tables, queue_tables, upgrade
from ..processor.state import FAILED, RUNNING
from ..settings import DEFAULT_DATABASE_URL, Settings, linkmq_database_url
from ..transport import TransportOptions
from .interrupts import Interrupts
from .workflow import START, metadata, start_message, user_table, write_users_csv

# The demo's own pace unless the environment says otherwise: fast ticks, several messages each.
DEMO_ENVIRONMENT = {
    "LINK_MQ_CONFIG": "link_message_queue.demo.workflow",
    "LINK_MQ_TICK_INTERVAL": "0.2",
    "LINK_MQ_MESSAGES_PER_TICK": "20",
    "LINK_MQ_RETRY_BACKOFF_S": "0.5",
}
DEMO_CSV = "demo_users.csv"
_BAR_WIDTH = 30
STOP_TIMEOUT_S = 20.0  # a warm shutdown of worker and beat, before they are killed
_LOG_TAIL_LINES = 20


class DemoError(Exception):
    """The demo could not run; the message says why and where to look."""


@dataclass
class DemoSummary:
    """What ``link-mq demo`` did: users asked for and written, chunks (sub-processes) and how many
    succeeded, messages retried and dead-lettered, the process id and final status, and the run time
    in seconds."""

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
        """Whether the process succeeded and every user was written."""
        return self.status == "succeeded" and self.written == self.users


def _say(line: str) -> None:
    """A line of the report on stdout, flushed at once: a pipe shows it as it comes."""
    print(line, flush=True)


def run_demo(
    users: int = 50,
    chunk: int = 10,
    timeout_s: float = 120.0,
    say: Callable[[str], None] = _say,
    environ: Mapping[str, str] | None = None,
    *,
    external: bool = False,
) -> DemoSummary:
    """``external``: use the worker and beat that already run (docker compose's demo profile)
    instead of starting them. ``say``: where each line of the report goes."""
    # From the first step: SIGTERM and SIGHUP (a closed terminal) stop the demo as Ctrl-C does
    # (the worker and beat run in sessions of their own and would outlive it otherwise), and
    # none is lost in a finalizer (Interrupts).
    with Interrupts() as interrupts:
        return _run_demo(
            interrupts,
            users=users,
            chunk=chunk,
            timeout_s=timeout_s,
            say=say,
            environ=environ,
            external=external,
        )


def _run_demo(
    interrupts: Interrupts,
    *,
    users: int,
    chunk: int,
    timeout_s: float,
    say: Callable[[str], None],
    environ: Mapping[str, str] | None,
    external: bool,
) -> DemoSummary:
    env = {**DEMO_ENVIRONMENT, **(os.environ if environ is None else environ)}
    csv_path = Path(env.get("LINK_MQ_DEMO_CSV", DEMO_CSV)).resolve()
    env = {
        **env,
        "LINK_MQ_CONFIG": DEMO_ENVIRONMENT["LINK_MQ_CONFIG"],
        "LINK_MQ_DEMO_CSV": str(csv_path),
    }
    settings = Settings.from_env(env)
    options = TransportOptions(table_prefix=settings.table_prefix)
    engine = database_for(settings.database_url, options).engine
    if not external and not _is_own_database(settings):
        # Someone else's database: what is queued or running there is theirs, not leftovers.
        _refuse_if_busy(settings, options)
    upgrade(engine, settings.table_prefix)
    interrupts.check()
    if not external and _is_own_database(settings):
        # No worker runs yet: what is on the queue or "running" was left by an interrupted run.
        queued, running = _clear_leftovers(engine, settings)
        if queued or running:
            say(
                f"demo: cleared what an interrupted run left: {queued} queued messages, "
                f"{running} processes marked failed"
            )
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

    processes: list[subprocess.Popen[bytes]] = []
    progress = _ProgressBar()
    interrupts.check()  # one that came while the database was set up
    with tempfile.TemporaryDirectory(prefix="link-mq-demo-") as workdir:
        try:
            log_path = Path(workdir) / "celery.log"
            if not external:
                _start_celery(env, log_path, processes, interrupts)
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
                progress=progress,
                log_path=log_path,
                interrupts=interrupts,
            )
        finally:
            _stop(processes, interrupts)
            progress.end()
        interrupts.check()
    say(
        f"demo: process {summary.process_id or '-'} {summary.status}: {summary.written} of "
        f"{summary.users} users written in {summary.chunks_succeeded} of {summary.chunks} "
        f"chunks, {summary.retried} retried, {summary.dead_lettered} dead-lettered "
        f"in {summary.elapsed_s:.1f} s"
    )
    if summary.process_id:
        say(f"demo: see every task with `link-mq processes show {summary.process_id[:8]}`")
    return summary


def _is_own_database(settings: Settings) -> bool:
    """Whether the demo runs on its own database: the embedded default (``LINK_MQ_DATABASE_URL``
    unset, ``sqlite:///link_mq.sqlite3``) with the broker on it (``LINK_MQ_BROKER_URL`` unset)."""
    return (
        settings.database_url == DEFAULT_DATABASE_URL
        and settings.broker_url == f"linkmq+{DEFAULT_DATABASE_URL}"
    )


def _refuse_if_busy(settings: Settings, options: TransportOptions) -> None:
    """On a database that is not the demo's own, raise :class:`DemoError` (saying how many, where
    and what to do) when messages wait on the demo's queue or any workflow process is running:
    the demo would delete or fail them, and its worker would take them. Reads only; a database
    without the tables yet holds neither. The queue is counted where it lives: the database of
    a ``linkmq+`` broker (a RabbitMQ or Redis broker's queue cannot be counted here)."""
    message = queue_tables(settings.table_prefix).message
    process = process_tables(settings.table_prefix).process
    queue_url = linkmq_database_url(settings.broker_url)
    queued = 0
    if queue_url is not None:
        queue_engine = database_for(queue_url, options).engine
        if sa.inspect(queue_engine).has_table(message.name):
            with queue_engine.connect() as connection:
                queued = connection.execute(
                    sa.select(sa.func.count())
                    .select_from(message)
                    .where(message.c.queue == settings.queue)
                ).scalar_one()
    running = 0
    engine = database_for(settings.database_url, options).engine
    if sa.inspect(engine).has_table(process.name):
        with engine.connect() as connection:
            running = connection.execute(
                sa.select(sa.func.count()).select_from(process).where(process.c.status == RUNNING)
            ).scalar_one()
    if queued or running:
        where = masked(settings.database_url)
        if queue_url is not None and queue_url != settings.database_url:
            where += f" (queue on {masked(queue_url)})"
        raise DemoError(
            f"not run: database {where} is not the demo's own and holds {queued} queued "
            f"messages on queue {settings.queue!r} and {running} running workflow processes, "
            "which the demo would delete, mark failed or take over; nothing was changed. "
            "Unset LINK_MQ_DATABASE_URL and LINK_MQ_BROKER_URL to run the demo on its embedded "
            f"default ({DEFAULT_DATABASE_URL}), point them at an empty database, or let the "
            "application's worker and beat empty that queue first (`link-mq status` shows it)"
        )


def _clear_leftovers(engine: sa.Engine, settings: Settings) -> tuple[int, int]:
    """Delete every message on the demo's queue and mark the demo's processes that are still
    "running" failed: (messages deleted, processes marked). Only on the demo's own database
    (:func:`_is_own_database`): anywhere else they are not leftovers."""
    message = queue_tables(settings.table_prefix).message
    tables = process_tables(settings.table_prefix)
    process, task = tables.process, tables.task
    stale = sa.and_(
        process.c.status == RUNNING,
        sa.or_(process.c.name == START, process.c.name.startswith(f"{START} > ")),
    )
    now = time.time()
    with engine.begin() as connection:
        queued = connection.execute(sa.delete(message).where(message.c.queue == settings.queue))
        connection.execute(
            sa.update(task)
            .where(
                task.c.status == RUNNING,
                task.c.process_id.in_(sa.select(process.c.id).where(stale)),
            )
            .values(status=FAILED, finished_at=now)
        )
        running = connection.execute(
            sa.update(process).where(stale).values(status=FAILED, finished_at=now)
        )
        return queued.rowcount, running.rowcount


def _start_celery(
    env: Mapping[str, str],
    log_path: Path,
    processes: list[subprocess.Popen[bytes]],
    interrupts: Interrupts,
) -> None:
    """Start worker and beat into ``processes``, each in a session of its own: Ctrl-C reaches
    the demo alone, which stops them in order (and can kill each with its pool children)."""
    base = [sys.executable, "-m", "celery", "-A", "link_message_queue.celery_app"]
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
        [
            *base,
            "beat",
            "--loglevel",
            "WARNING",
            "--schedule",
            str(log_path.with_name("beat-schedule")),
        ],
    ]
    with log_path.open("ab") as log:
        for command in commands:
            # A stop signal meanwhile is only recorded (Interrupts): each process started is
            # in ``processes`` before the check raises it, so it is stopped.
            processes.append(
                subprocess.Popen(
                    command,
                    env={**os.environ, **env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            interrupts.check()


def _stop(processes: list[subprocess.Popen[bytes]], interrupts: Interrupts) -> None:
    """A warm shutdown (SIGTERM) of each process; those still running after
    ``STOP_TIMEOUT_S``, or all of them at a second Ctrl-C, are killed with their children."""
    try:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(process.poll() is None for process in processes):
            interrupts.check()  # a second Ctrl-C: kill them now
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("celery", STOP_TIMEOUT_S)
            time.sleep(0.1)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
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
    progress: _ProgressBar,
    log_path: Path,
    interrupts: Interrupts,
) -> DemoSummary:
    process = process_tables(settings.table_prefix).process
    while True:
        interrupts.check()
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
        progress.show(int(written), users)
        elapsed = time.monotonic() - started
        ended = bool(top) and top[0].status != RUNNING
        if ended or dead or elapsed > timeout_s:
            progress.end()
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
        for name, child in zip(("worker", "beat"), processes, strict=False):
            if child.poll() is not None:
                tail = log_path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
                raise DemoError(
                    f"celery {name} stopped early (exit code {child.returncode}); "
                    "the end of its log:\n" + "\n".join(tail)
                )
        time.sleep(0.1)


def _dead_letters(engine: sa.Engine, settings: Settings) -> int:
    table = sa.table(f"{settings.table_prefix}dead_letter")
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


class _ProgressBar:
    """``[####......] 20/50`` on stderr: redrawn in place on a terminal; elsewhere (a log file,
    a pipe, CI) one line each time the count moves, so the log stays readable."""

    def __init__(self) -> None:
        self._drawn = False
        self._in_place = sys.stderr.isatty()
        self._last_done: int | None = None

    def show(self, done: int, total: int) -> None:
        if not self._in_place and done == self._last_done:
            return
        self._last_done = done
        filled = _BAR_WIDTH * done // max(total, 1)
        bar = f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {done}/{total}"
        sys.stderr.write(f"\r{bar}" if self._in_place else f"{bar}\n")
        sys.stderr.flush()
        self._drawn = self._in_place

    def end(self) -> None:
        if self._drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._drawn = False
