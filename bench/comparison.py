"""linkmq+ side by side with its peers (bench/systems.py): the same workloads on every system,
in rounds. Each round runs every scenario on every system in turn, the systems' order rotated
from round to round; the report keeps each figure's median over the rounds. This machine's
speed drifts by tens of percent within minutes: comparing within a scenario, a minute apart,
and over several rounds, keeps the drift out of the ratios."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .scenarios import Worker, wait_done, worker_out
from .systems import System

CRASH_TASKS = 2  # one per worker process: both are mid-task when the worker dies
CRASH_TASK_S = 2.0
# How long the tasks of a killed worker get to run again on a new one: linkmq+'s lease (30 s)
# plus the tasks' own time, with room. Redis (visibility timeout 1 h) and PGMQ (30 min) would
# redeliver later; procrastinate leaves a dead worker's jobs "doing" until someone retries them.
CRASH_BUDGET_S = 45.0
# A drain that takes longer is cut there: its rate is over the tasks done by then.
DRAIN_BUDGET_S = 60.0
LATENCY_RATE_PER_S = 20.0
LATENCY_WAIT_S = 30.0  # after the last publish; tasks not started by then are left out


@dataclass(frozen=True)
class Counts:
    publish: int  # one-by-one and bulk publishes
    drain: int
    latency: int  # tasks at 20 msg/s


def _rate(records: list[tuple[float, float, float]]) -> float:
    """Tasks per second from the first task's start to the last one's end."""
    first = min(started for _, started, _ in records)
    last = max(ended for _, _, ended in records)
    return len(records) / (last - first)


def publish_one_by_one(system: System, count: int) -> dict[str, float]:
    """The system's one-by-one publish; for linkmq+ on PostgreSQL also the same with the
    transport option ``publish_synchronous_commit="off"`` (``publish_unflushed_per_s``): each
    publish returns before the server's WAL flush, the durability of Redis's default."""
    system.reset()
    figures = {"publish_per_s": system.publish(count)}
    return figures | _linkmq_only(system, "publish_unflushed", count, "publish_unflushed_per_s")


def publish_bulk(system: System, count: int) -> dict[str, float]:
    """The system's bulk API (nothing for a system without one); for linkmq+ also a Celery
    group inside ``publish_on()`` (``bulk_group_per_s``), the bulk path without an API of ours."""
    system.reset()
    rate = system.publish_bulk(count)
    figures = {} if rate is None else {"bulk_per_s": rate}
    return figures | _linkmq_only(system, "publish_bulk_group", count, "bulk_group_per_s")


def _linkmq_only(system: System, method: str, count: int, key: str) -> dict[str, float]:
    """``{key: rate}`` of the system's ``method(count)`` on fresh storage, for a measure only
    linkmq+ has (nothing where the system lacks the method or it returns None)."""
    measure = getattr(system, method, None)
    if measure is None:
        return {}
    system.reset()
    rate = measure(count)
    return {} if rate is None else {key: rate}


def drain(system: System, workdir: Path, count: int, budget_s: float) -> dict[str, float]:
    """Tasks per second a fresh worker drains ``count`` queued trivial tasks at."""
    system.reset()
    system.publish(count)
    worker = system.start_worker(workdir, worker_out(workdir, system.name))
    try:
        records = wait_done(worker, count + 1, budget_s)
    finally:
        worker.stop()
    return {"drain_per_s": _rate(records), "drained": len(records)}


def latency(system: System, workdir: Path, count: int) -> dict[str, float]:
    """Enqueue→start delay of ``count`` tasks published at 20 a second to a waiting worker
    (``latency_n``: how many of them had started ``LATENCY_WAIT_S`` after the last publish)."""
    system.reset()
    worker = system.start_worker(workdir, worker_out(workdir, system.name))
    try:
        system.publish(0)
        wait_done(worker, 1, 60)  # the warm-up task: the worker is up
        system.publish(count, rate_per_s=LATENCY_RATE_PER_S)
        records = wait_done(worker, count + 2, LATENCY_WAIT_S)
    finally:
        worker.stop()
    delays_ms = sorted((started - sent) * 1000 for sent, started, _ in records[2:])
    quantiles = statistics.quantiles(delays_ms, n=100)
    return {
        "latency_p50_ms": quantiles[49],
        "latency_p99_ms": quantiles[98],
        "latency_n": len(delays_ms),
    }


def crash(system: System, workdir: Path, budget_s: float = CRASH_BUDGET_S) -> dict[str, float]:
    """SIGKILL a worker (every process of it) while it runs ``CRASH_TASKS`` tasks, start a new
    one: how many of those tasks did not run to the end within ``budget_s``."""
    system.reset()
    out = worker_out(workdir, system.name)
    system.publish_slow(CRASH_TASKS, CRASH_TASK_S)
    worker = system.start_worker(workdir, out)
    try:
        if not _wait_for(lambda: len(worker.numbers("started")) >= CRASH_TASKS, 60):
            raise RuntimeError(f"{system.name}: the tasks did not start within 60 s")
        if worker.numbers("done"):
            raise RuntimeError(f"{system.name}: a task ended before the worker was killed")
    finally:
        worker.kill()
    replacement: Worker = system.start_worker(workdir, out)
    try:
        _wait_for(lambda: len(replacement.numbers("done")) >= CRASH_TASKS, budget_s)
    finally:
        replacement.stop()
    return {"crash_lost": CRASH_TASKS - len(replacement.numbers("done"))}


def _wait_for(condition: Callable[[], bool], budget_s: float) -> bool:
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def compare(
    systems: list[System],
    workdir: Path,
    counts: Counts,
    repeat: int,
    *,
    crash_budget_s: float = CRASH_BUDGET_S,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, list[float]]]]:
    """Every scenario on every system, ``repeat`` rounds, systems rotated; per system the
    median of each figure and ``trials``, and each figure of every round (in round order)."""
    scenarios: list[tuple[str, Callable[[System], dict[str, float]]]] = [
        ("publish one by one", lambda s: publish_one_by_one(s, counts.publish)),
        ("publish bulk", lambda s: publish_bulk(s, counts.publish)),
        ("drain", lambda s: drain(s, workdir, counts.drain, budget_s=DRAIN_BUDGET_S)),
        ("latency", lambda s: latency(s, workdir, counts.latency)),
        ("crash", lambda s: crash(s, workdir, crash_budget_s)),
    ]
    trials: dict[str, dict[str, list[float]]] = {system.name: {} for system in systems}
    for round_number in range(repeat):
        shift = round_number % len(systems)
        order = systems[shift:] + systems[:shift]
        for label, scenario in scenarios:
            for system in order:
                measured = scenario(system)
                for key, value in measured.items():
                    trials[system.name].setdefault(key, []).append(value)
                figures = ", ".join(f"{key} {value:,.1f}" for key, value in measured.items())
                log(f"round {round_number + 1}/{repeat} {label}: {system.name}: {figures}")
    medians = {
        name: {key: statistics.median(values) for key, values in figures.items()}
        | {"trials": repeat}
        for name, figures in trials.items()
    }
    return medians, trials
