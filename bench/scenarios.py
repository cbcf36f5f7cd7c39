"""Benchmark scenarios. Each returns plain numbers; nothing here asserts a time."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kombu
import sqlalchemy as sa
from celery import Celery

from .brokers import Broker

REPO = Path(__file__).resolve().parents[1]
_FLOWER_PORT = 5599
_FLOWER_URL = f"http://127.0.0.1:{_FLOWER_PORT}"


def stop_processes(processes: list[subprocess.Popen[bytes]], timeout_s: float = 30.0) -> None:
    """SIGTERM each process, then wait for all; one still running ``timeout_s`` later is
    SIGKILLed, and said so on stdout (a worker that hangs at its warm shutdown is a finding,
    not something to hide, but it must not end the whole run)."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            print(
                f"bench: {' '.join(map(str, process.args[2:6]))} (pid {process.pid}) did not "
                f"stop within {timeout_s:.0f} s of SIGTERM: killed",
                flush=True,
            )
            process.kill()
            process.wait()


@dataclass
class Worker:
    """The processes of one worker (a Celery worker with its pool, or several procrastinate
    workers), each the leader of its own process group, writing to ``out`` (bench/task_records.py)."""

    processes: list[subprocess.Popen[bytes]]
    out: Path

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.processes[0]

    def stop(self) -> None:
        stop_processes(self.processes)

    def kill(self) -> None:
        """SIGKILL every process of the worker and its children at once, as a crash would."""
        for process in self.processes:
            os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            process.wait()

    def finished(self) -> int:
        """Tasks done so far: counts lines without parsing them (the wait loop runs this
        often, on the same 2 cores as the worker)."""
        if not self.out.exists():
            return 0
        return self.out.read_bytes().count(b"\n")

    def records(self) -> list[tuple[float, float, float]]:
        if not self.out.exists():
            return []
        rows = []
        for line in self.out.read_text().splitlines():
            sent, started, ended = (float(part) for part in line.split())
            rows.append((sent, started, ended))
        return rows

    def numbers(self, stage: str) -> set[int]:
        """The slow tasks that reached ``stage`` ("started" or "done")."""
        path = self.out.with_name(f"{self.out.name}.{stage}")
        if not path.exists():
            return set()
        return {int(line) for line in path.read_text().split()}


def worker_out(workdir: Path, name: str) -> Path:
    """A new file for a worker's records."""
    return workdir / f"{name.replace(' ', '-').replace('+', '')}-{time.time_ns()}.out"


def start_worker(
    broker: Broker,
    workdir: Path,
    *,
    concurrency: int = 2,
    events: bool = False,
    remote_control: bool = True,
    out: Path | None = None,
) -> Worker:
    out = out or worker_out(workdir, f"{broker.transport}-{broker.database}")
    log = (workdir / "worker.log").open("ab")
    options = (
        {"BENCH_TRANSPORT_OPTIONS": json.dumps(broker.transport_options)}
        if broker.transport_options
        else {}
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.app",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(concurrency),
            "-Q",
            "bench",
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            *(["-E"] if events else []),
        ],
        cwd=REPO,
        env={
            **os.environ,
            **options,
            "BENCH_BROKER": broker.url,
            "BENCH_OUT": str(out),
            "BENCH_REMOTE_CONTROL": "1" if remote_control else "0",
            "PYTHONPATH": f"{REPO / 'src'}:{REPO}",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, for kill()
    )
    log.close()  # the worker writes to its own copy
    return Worker([process], out)


def producer_app(url: str, transport_options: dict[str, Any] | None = None) -> Celery:
    app = Celery("bench-producer", broker=url)
    app.conf.update(
        task_serializer="json",
        task_default_queue="bench",
        broker_transport_options=transport_options or {},
    )
    return app


def publish(
    url: str,
    count: int,
    duration_s: float = 0.0,
    rate_per_s: float | None = None,
    transport_options: dict[str, Any] | None = None,
) -> float:
    """Publish one warm-up task (untimed), then ``count`` bench tasks one by one; returns
    messages per second."""
    app = producer_app(url, transport_options)
    with app.producer_or_acquire() as producer:
        app.send_task("bench.work", args=(time.time(), 0.0), producer=producer)  # warm-up
        started = time.perf_counter()
        for _ in paced(count, rate_per_s):
            app.send_task("bench.work", args=(time.time(), duration_s), producer=producer)
        elapsed = time.perf_counter() - started
    return count / elapsed


def paced(count: int, rate_per_s: float | None) -> Iterator[int]:
    """0 … ``count`` - 1, each when it is due at ``rate_per_s`` (at once when None)."""
    started = time.perf_counter()
    for index in range(count):
        if rate_per_s is not None:
            pause = started + index / rate_per_s - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        yield index


def wait_done(worker: Worker, count: int, budget_s: float) -> list[tuple[float, float, float]]:
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline and worker.finished() < count:
        time.sleep(0.05)
    return worker.records()


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process and its live descendants so far, from /proc
    (Linux); None where there is no /proc or the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as listing:
            children = [int(child) for child in listing.read().split()]
    except OSError:
        return None
    # Fields 14 and 15 of stat (utime, stime), counted after the command name's ")".
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(filter(None, (cpu_seconds(child) for child in children)))


def wait_done_measuring_cpu(
    worker: Worker, count: int, budget_s: float, others: dict[str, int]
) -> tuple[list[tuple[float, float, float]], dict[str, float]]:
    """``wait_done``, and the CPU each process (the worker with its pool, and ``others`` by
    name) spent per task between the first finished task and the last: start-up and shutdown
    left out."""
    pids = {"worker": worker.process.pid, **others}
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline and worker.finished() < 1:
        time.sleep(0.01)
    first_done = worker.finished()
    at_first = {name: cpu_seconds(pid) for name, pid in pids.items()}
    while time.monotonic() < deadline and worker.finished() < count:
        time.sleep(0.05)
    done = worker.finished() - first_done
    at_last = {name: cpu_seconds(pid) for name, pid in pids.items()}
    per_task: dict[str, float] = {}
    for name in pids:
        before, after = at_first[name], at_last[name]
        if before is not None and after is not None and done > 0:
            per_task[f"{name}_cpu_ms_per_task"] = (after - before) * 1000 / done
    return worker.records(), per_task


# -- scenarios ------------------------------------------------------------------------------


def publish_rate(broker: Broker, count: int) -> dict[str, float]:
    broker.reset()
    return {"publish_per_s": publish(broker.url, count)}


def publish_ceiling(broker: Broker, count: int) -> dict[str, float]:
    """Celery's own publish cost (memory transport) plus one raw INSERT+COMMIT."""
    celery_rate = publish("memory://", count)
    assert broker.database_url is not None
    engine = sa.create_engine(broker.database_url)
    table = sa.Table(
        "bench_raw",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("payload", sa.Text),
    )
    table.drop(engine, checkfirst=True)
    table.create(engine)
    payload = "x" * 600  # about a Celery task message
    started = time.perf_counter()
    for _ in range(count):
        with engine.begin() as connection:
            connection.execute(table.insert().values(payload=payload))
    raw_rate = count / (time.perf_counter() - started)
    table.drop(engine)
    engine.dispose()
    ceiling = 1 / (1 / celery_rate + 1 / raw_rate)
    return {
        "celery_publish_per_s": celery_rate,
        "raw_insert_per_s": raw_rate,
        "ceiling_per_s": ceiling,
    }


def drain_rate(
    broker: Broker,
    workdir: Path,
    count: int,
    budget_s: float,
    *,
    events: bool = False,
    flower: bool = False,
    remote_control: bool = True,
) -> dict[str, float]:
    """Tasks per second draining ``count`` queued tasks; ``events``: the worker sends task
    events; ``flower``: a connected Flower process receives them; without ``remote_control``
    the worker consumes no remote-control queue (nothing of monitoring is left)."""
    broker.reset()
    publish(broker.url, count)
    flower_process = _start_flower(broker, workdir) if flower else None
    if flower_process is not None:
        # Measure a connected Flower, not its start-up competing for the CPU.
        _wait_for_flower(flower_process)
    worker = start_worker(broker, workdir, events=events, remote_control=remote_control)
    others = {} if flower_process is None else {"flower": flower_process.pid}
    try:
        records, cpu = wait_done_measuring_cpu(worker, count + 1, budget_s, others)
    finally:
        worker.stop()
        if flower_process is not None:
            flower_process.terminate()
            flower_process.wait(timeout=30)
    first = min(started for _, started, _ in records)
    last = max(ended for _, _, ended in records)
    key = (
        "drain_monitored_per_s"
        if flower
        else "drain_events_per_s"
        if events
        else "drain_per_s"
        if remote_control
        else "drain_bare_per_s"
    )
    # CPU per task under the same key's name: "drain_monitored_worker_cpu_ms_per_task", …
    return {
        key: len(records) / (last - first),
        "drained": len(records),
        **{f"{key.removesuffix('_per_s')}_{name}": value for name, value in cpu.items()},
    }


def _start_flower(broker: Broker, workdir: Path) -> subprocess.Popen[bytes]:
    with (workdir / "flower.log").open("ab") as log:  # Flower writes to its own copy
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bench.app",
                "flower",
                f"--port={_FLOWER_PORT}",
                "--address=127.0.0.1",
            ],
            cwd=REPO,
            env={**os.environ, "BENCH_BROKER": broker.url, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait_for_flower(flower: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if flower.poll() is not None:
            raise RuntimeError(f"Flower exited with {flower.returncode}; see flower.log")
        try:
            with urllib.request.urlopen(f"{_FLOWER_URL}/healthcheck", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"Flower did not answer within {timeout_s} s")


def sleepy_tasks(broker: Broker, workdir: Path, count: int, budget_s: float) -> dict[str, float]:
    broker.reset()
    publish(broker.url, count, duration_s=0.05)
    worker = start_worker(broker, workdir)
    try:
        records = wait_done(worker, count + 1, budget_s)
    finally:
        worker.stop()
    first = min(started for _, started, _ in records)
    last = max(ended for _, _, ended in records)
    elapsed = last - first
    # Incomplete runs are extrapolated at the rate reached within the budget.
    return {"sleepy_s": elapsed * (count + 1) / len(records), "sleepy_done": len(records)}


def idle_queries(broker: Broker, workdir: Path, seconds: float) -> dict[str, float]:
    """Transactions per second an idle worker causes (PostgreSQL's own counters)."""
    broker.reset()
    assert broker.database_url is not None
    database = sa.engine.make_url(broker.database_url).database
    worker = start_worker(broker, workdir)
    engine = sa.create_engine(broker.database_url, poolclass=sa.pool.NullPool)

    def transactions() -> int:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_stat_force_next_flush()"))
            return int(
                connection.execute(
                    sa.text(
                        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :d"
                    ),
                    {"d": database},
                ).scalar_one()
            )

    try:
        publish(broker.url, 0)
        wait_done(worker, 1, 60)
        time.sleep(2)
        before = transactions()
        time.sleep(seconds)
        after = transactions()
    finally:
        worker.stop()
        engine.dispose()
    return {"idle_queries_per_s": max(0, after - before - 1) / seconds}


def consume_rate(
    url: str, count: int, budget_s: float, queue_name: str = "history", put: bool = True
) -> float:
    """kombu-level consume+ack of ``count`` messages of ``queue_name``, put there first
    unless ``put`` is false (they are waiting already)."""
    with kombu.Connection(url) as connection:
        queue = connection.SimpleQueue(queue_name)
        if put:
            for number in range(count):
                queue.put(number)
        started = time.perf_counter()
        done = 0
        while done < count and time.perf_counter() - started < budget_s:
            message = queue.get(timeout=5)
            message.ack()
            done += 1
        elapsed = time.perf_counter() - started
        queue.close()
    return done / elapsed


def after_history(broker: Broker, history: int, count: int, budget_s: float) -> dict[str, float]:
    """Consume rate on fresh tables, then after ``history`` messages passed through them.

    The history is written in SQL, as each transport leaves it: linkmq+ deletes acked rows
    (inserted then deleted in batches, as churn does), sqla+ keeps them invisible."""
    broker.reset()
    fresh = consume_rate(broker.url, count, budget_s)
    broker.reset()
    consume_rate(broker.url, 1, budget_s)  # creates the tables
    assert broker.database_url is not None
    engine = sa.create_engine(broker.database_url)
    batch = 10_000
    with engine.begin() as connection:
        if broker.transport == "sqla":
            queue_id = connection.execute(
                sa.text("SELECT id FROM kombu_queue WHERE name='history'")
            ).scalar_one()
    for _ in range(history // batch):
        with engine.begin() as connection:
            if broker.transport == "sqla":
                # kombu's model takes ids from a sequence on PostgreSQL.
                postgres = engine.dialect.name == "postgresql"
                id_column = "id, " if postgres else ""
                next_id = "nextval('message_id_sequence'), " if postgres else ""
                connection.execute(
                    sa.text(
                        f"INSERT INTO kombu_message ({id_column}visible, timestamp, payload, "
                        f"version, queue_id) VALUES ({next_id}false, CURRENT_TIMESTAMP, 'x', 1, :q)"
                    ),
                    [{"q": queue_id}] * batch,
                )
            else:
                now = time.time()
                connection.execute(
                    sa.text(
                        "INSERT INTO linkmq_message (queue, priority, payload, created_at, visible_at, "
                        "delivery_count) VALUES ('history', 0, 'x', :t, :t, 1)"
                    ),
                    [{"t": now}] * batch,
                )
                connection.execute(sa.text("DELETE FROM linkmq_message WHERE payload = 'x'"))
    engine.dispose()
    aged = consume_rate(broker.url, count, budget_s)
    return {"consume_fresh_per_s": fresh, "consume_after_history_per_s": aged, "history": history}


def bridge_throughput(
    broker: Broker, workdir: Path, mode: str, *, messages_per_tick: int, count: int, budget_s: float
) -> float:
    """Workflow messages per second end to end: dispatched through a queue channel, consumed by
    ticks (``mode='tick'``) or by a 2-process worker (``mode='worker'``), handled by the
    workflow engine into a table."""
    from celery import Celery as _Celery

    from link_message_queue.celery_config import celery_config
    from link_message_queue.messages import Payload, TaskListPosition, WorkflowMessage
    from link_message_queue.runtime import build_runtime
    from link_message_queue.settings import Settings

    from .workflow_config import HANDLER, NODE, metadata, sink

    assert broker.database_url is not None
    broker.reset()
    engine = sa.create_engine(broker.database_url, poolclass=sa.pool.NullPool)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    env = {
        "LINK_MQ_DATABASE_URL": broker.database_url,
        "LINK_MQ_CONFIG": "bench.workflow_config",
        "LINK_MQ_CONSUME_MODE": mode,
        "LINK_MQ_TICK_INTERVAL": "0.05",
        "LINK_MQ_MESSAGES_PER_TICK": str(messages_per_tick),
    }
    settings = Settings.from_env(env)
    app = _Celery("bench-dispatch")
    app.conf.update(celery_config(settings))
    runtime = build_runtime(app, settings)
    position = TaskListPosition.new(NODE)
    for number in range(count):
        message = WorkflowMessage.new_data_collected(Payload("Bench\\Item", number), HANDLER, NODE)
        runtime.workflow_engine.dispatch(message.prepare_data_processing(position, HANDLER))
    log = (workdir / "bridge.log").open("ab")
    base = [sys.executable, "-m", "celery", "-A", "link_message_queue.celery_app"]
    commands = [
        [
            *base,
            "worker",
            "-c",
            "2",
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]
    ]
    if mode == "tick":
        commands.append(
            [
                *base,
                "beat",
                "--loglevel",
                "WARNING",
                "--schedule",
                str(workdir / f"beat-{time.time_ns()}"),
            ]
        )
    processes = [
        subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, **env, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for command in commands
    ]
    log.close()  # the processes write to their own copies
    deadline = time.monotonic() + budget_s
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                if (
                    connection.execute(sa.select(sa.func.count()).select_from(sink)).scalar_one()
                    >= count
                ):
                    break
            time.sleep(0.2)
    finally:
        stop_processes(processes)
    with engine.connect() as connection:
        first, last, done = connection.execute(
            sa.select(
                sa.func.min(sink.c.handled_at), sa.func.max(sink.c.handled_at), sa.func.count()
            )
        ).one()
    engine.dispose()
    return float(done) / (last - first) if done and last > first else 0.0


def cleaner_cost(broker: Broker, live: int = 50_000, expired: int = 10_000) -> dict[str, float]:
    """What the cleaner costs beside ``live`` waiting messages: an idle round (nothing expired),
    and rounds removing ``expired`` messages whose time-to-live ran out (the longest round bounds
    how long it holds its locks)."""
    from link_message_queue.db import engine_for
    from link_message_queue.db.schema import queue_tables
    from link_message_queue.transport.options import TransportOptions
    from link_message_queue.transport.rows import PendingRow
    from link_message_queue.transport.store import MessageStore
    from link_message_queue.transport.store.cleaner import EXPIRED_BATCH

    assert broker.database_url is not None
    broker.reset()
    store = MessageStore(
        engine_for(broker.database_url, TransportOptions()), queue_tables("linkmq_")
    )
    payload = "x" * 600

    def insert(queue: str, count: int, ttl_s: float | None) -> None:
        for start in range(0, count, 5000):
            rows = [PendingRow(queue, payload, 0, ttl_s)] * min(5000, count - start)
            store.messages.put_many(rows)

    def cleaner_round() -> tuple[float, int]:
        started = time.perf_counter()
        store.queues.delete_expired_queues(EXPIRED_BATCH)
        deleted = store.messages.delete_expired(EXPIRED_BATCH)
        return time.perf_counter() - started, deleted

    insert("live", live, None)
    idle_s = [cleaner_round()[0] for _ in range(20)]
    insert("gone", expired, -1.0)  # their time-to-live already ran out
    rounds_s = []
    while True:
        elapsed, deleted = cleaner_round()
        rounds_s.append(elapsed)
        if not deleted:
            break
    return {
        "cleaner_idle_round_ms": statistics.median(idle_s) * 1000,
        "cleaner_rounds": len(rounds_s) - 1,
        "cleaner_longest_round_ms": max(rounds_s) * 1000,
        "cleaner_expired_per_s": expired / sum(rounds_s),
    }


def backlog_claim(
    empty: Broker,
    full: Broker,
    workdir: Path,
    *,
    backlog: int,
    count: int,
    rounds: int,
    budget_s: float,
) -> dict[str, Any]:
    """linkmq+ on PostgreSQL: how fast tasks are claimed from a queue holding ``backlog`` tasks
    (on ``full``'s database) against one holding only the tasks measured (on ``empty``'s): a
    kombu-level claim+ack of ``count`` messages, then a 2-process worker draining ``count``
    tasks; ``rounds`` times, alternating which goes first; medians.

    The backlog is one real published task copied ``backlog`` times in one INSERT … SELECT
    (each copy with its own task id), then vacuumed, analysed and checkpointed: rows as the
    transport stores them, in a minute instead of hours of publishing. The measured tasks are
    taken from its head, as consumers eat into a backlog."""
    assert empty.database_url is not None
    assert full.database_url is not None
    full.reset()
    publish(full.url, 0)  # one real task: the template of the backlog
    fill_started = time.perf_counter()
    _copy_first_task(full.database_url, backlog)
    fill_s = time.perf_counter() - fill_started
    trials: dict[str, list[float]] = {}
    sides = [("empty", empty), ("backlog", full)]
    for round_number in range(rounds):
        for label, broker in sides[round_number % 2 :] + sides[: round_number % 2]:
            if broker is empty:
                broker.reset()
                publish(broker.url, 2 * count)  # (and the warm-up task)
            claim_ack = consume_rate(broker.url, count, budget_s, queue_name="bench", put=False)
            trials.setdefault(f"claim_ack_{label}_per_s", []).append(claim_ack)
            worker = start_worker(broker, workdir)
            try:
                records = wait_done(worker, count, budget_s)
            finally:
                worker.stop()
            first = min(started for _, started, _ in records)
            last = max(ended for _, _, ended in records)
            trials.setdefault(f"drain_{label}_per_s", []).append(len(records) / (last - first))
    full.reset()  # a gigabyte
    return (
        {key: statistics.median(values) for key, values in trials.items()}
        | {"backlog": backlog, "backlog_fill_s": fill_s, "trials": rounds}
        | {f"{key}_rounds": values for key, values in trials.items()}
    )


def _copy_first_task(database_url: str, copies: int) -> None:
    """Append ``copies`` copies of the oldest message in the queue, each with a new task id."""
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        template_id, payload = connection.execute(
            sa.text("SELECT id, payload FROM linkmq_message ORDER BY id LIMIT 1")
        ).one()
        task_id = json.loads(payload)["headers"]["id"]
        connection.execute(
            sa.text(
                "INSERT INTO linkmq_message (queue, priority, payload, created_at, visible_at, "
                "delivery_count) SELECT queue, priority, "
                "replace(payload, :task_id, gen_random_uuid()::text), created_at, visible_at, 0 "
                "FROM linkmq_message, generate_series(1, :copies) WHERE id = :template_id"
            ),
            {"task_id": task_id, "copies": copies, "template_id": template_id},
        )
    # What autovacuum and the checkpointer do to a backlog that built up over hours; measured
    # right after a 1 GB insert, the checkpointer's writes would be counted as claim cost.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE linkmq_message"))
        connection.execute(sa.text("CHECKPOINT"))
    engine.dispose()
