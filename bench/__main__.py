"""``python -m bench`` (or ``make bench``): every scenario on kombu's sqla+, linkmq+ and Redis,
then linkmq+ side by side with its PostgreSQL peers (procrastinate, Celery on kombu's pgmq
transport, dramatiq-pg, PgQueuer, Celery+Redis as the machine's Redis is configured, and
Celery+Redis fsync: a redis-server the benchmark starts with ``appendfsync always``, so each
publish is on disk before it returns, as on linkmq+ and the PostgreSQL peers) in rounds, in one
run; prints ratios, writes ``bench/results/latest.{json,md,png}``.

Needs the PostgreSQL of the test setup (127.0.0.1:5432, trust auth); Redis is used when it
answers on 127.0.0.1:6379, ``redis-server`` where it is installed; a peer that cannot be had is skipped with a note. ``--quick``
shrinks every count for a smoke run; ``--peers`` runs only the comparison; ``--backlog N``
adds the claim rate with N tasks waiting.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import celery
import kombu
import sqlalchemy as sa

from . import comparison, scenarios
from .brokers import (
    Broker,
    linkmq_postgres_broker,
    persisted_redis,
    postgres_brokers,
    redis_brokers,
    redis_persistence,
    sqlite_brokers,
)
from .report import chart, table
from .systems import CelerySystem, System, comparison_systems

RESULTS = Path(__file__).with_name("results")


def run_monitoring(quick: bool, repeat: int) -> dict[str, Any]:
    """Only the monitoring cost: drain without remote control (nothing of monitoring), plain
    (remote control on), with events, with events and Flower, on linkmq+ (and on Redis, for
    the cost of Celery's events and Flower themselves). ``repeat`` runs the four drains in
    turn that many times and keeps each one's median: this machine's speed drifts by tens of
    percent within minutes, so one run of each can compare a fast minute with a slow one."""
    count = 500 if quick else 5000
    workdir = Path(tempfile.mkdtemp(prefix="linkmq-bench-"))
    brokers = [
        b
        for b in postgres_brokers() + sqlite_brokers(workdir) + redis_brokers()
        if b.transport != "sqla"
    ]
    results: dict[str, dict[str, float]] = {}
    for broker in brokers:
        trials: dict[str, list[float]] = {}
        for _ in range(repeat):
            for events, flower, remote_control in (
                (False, False, False),
                (False, False, True),
                (True, False, True),
                (True, True, True),
            ):
                measured = scenarios.drain_rate(
                    broker,
                    workdir,
                    count,
                    budget_s=120,
                    events=events,
                    flower=flower,
                    remote_control=remote_control,
                )
                for key, value in measured.items():
                    trials.setdefault(key, []).append(value)
        results[broker.name] = {key: statistics.median(values) for key, values in trials.items()}
        results[broker.name]["trials"] = repeat
        if broker.transport == "linkmq":
            results[broker.name].update(scenarios.cleaner_cost(broker))
        print(broker.name, json.dumps(results[broker.name]), flush=True)
    return {"results": results}


def run_brokers(quick: bool, workdir: Path) -> dict[str, dict[str, float]]:
    """Every scenario on kombu's sqla+, linkmq+ (PostgreSQL and SQLite) and Redis, once each."""
    scale = 0.1 if quick else 1.0
    n_publish = int(2000 * scale)
    n_drain = int(5000 * scale)
    n_history = int(300_000 * scale)
    brokers: list[Broker] = postgres_brokers() + sqlite_brokers(workdir) + redis_brokers()
    results: dict[str, dict[str, float]] = {}
    for broker in brokers:
        print(f"== {broker.name}", flush=True)
        measured: dict[str, float] = {}
        measured |= scenarios.publish_rate(broker, n_publish)
        if broker.database_url is not None and broker.transport == "linkmq":
            measured |= scenarios.publish_ceiling(broker, n_publish)
        measured |= scenarios.drain_rate(broker, workdir, n_drain, budget_s=30)
        measured |= scenarios.sleepy_tasks(broker, workdir, 200, budget_s=40)
        measured |= comparison.latency(CelerySystem(broker), workdir, int(200 * max(scale, 0.25)))
        if broker.database == "PostgreSQL":
            measured |= scenarios.idle_queries(broker, workdir, seconds=10)
        if broker.database_url is not None:
            measured |= scenarios.after_history(
                broker, n_history, count=int(2000 * max(scale, 0.25)), budget_s=20
            )
        if broker.transport == "linkmq":
            measured["bridge_tick1_per_s"] = scenarios.bridge_throughput(
                broker,
                workdir,
                "tick",
                messages_per_tick=1,
                count=int(200 * max(scale, 0.5)),
                budget_s=60,
            )
            measured["bridge_tick100_per_s"] = scenarios.bridge_throughput(
                broker,
                workdir,
                "tick",
                messages_per_tick=100,
                count=int(3000 * max(scale, 0.2)),
                budget_s=60,
            )
            measured["bridge_worker_per_s"] = scenarios.bridge_throughput(
                broker,
                workdir,
                "worker",
                messages_per_tick=1,
                count=int(3000 * max(scale, 0.2)),
                budget_s=60,
            )
        results[broker.name] = measured
        print(json.dumps(measured, indent=1), flush=True)
    return results


def run_comparison(quick: bool, repeat: int, workdir: Path) -> dict[str, Any]:
    """linkmq+ on PostgreSQL and its peers, every workload, ``repeat`` rotated rounds."""
    counts = (
        comparison.Counts(publish=200, drain=200, latency=50)
        if quick
        else comparison.Counts(publish=3000, drain=3000, latency=200)
    )
    systems, notes = comparison_systems(linkmq_postgres_broker("linkmq_bench_peers"))
    with persisted_redis(workdir / "redis-fsync") as durable_redis:
        # Beside the machine's Redis (as configured: usually nothing on disk), one that keeps
        # each publish on disk before it replies, as linkmq+ and the PostgreSQL peers do.
        if durable_redis is not None:
            systems.append(CelerySystem(durable_redis))
        notes += _redis_notes(systems)
        for note in notes:
            print(note, flush=True)
        print(f"== side by side: {', '.join(s.name for s in systems)}; {repeat} rounds", flush=True)
        results, rounds = comparison.compare(systems, workdir, counts, repeat)
    return {
        "results": results,
        "rounds": rounds,
        "notes": notes,
        "repeat": repeat,
        "counts": {
            "publish": counts.publish,
            "drain": counts.drain,
            "latency": counts.latency,
            "crash_tasks": comparison.CRASH_TASKS,
            "crash_budget_s": comparison.CRASH_BUDGET_S,
        },
    }


def _redis_notes(systems: list[System]) -> list[str]:
    """What each Redis in the comparison keeps on disk (its configuration)."""
    return [
        f"{system.name}: Redis with {redis_persistence(system.broker.url)}"
        for system in systems
        if isinstance(system, CelerySystem) and system.broker.transport == "redis"
    ]


def run_backlog(backlog: int, quick: bool, repeat: int, workdir: Path) -> dict[str, Any]:
    print(f"== linkmq+ PostgreSQL with a backlog of {backlog:,}", flush=True)
    figures = scenarios.backlog_claim(
        linkmq_postgres_broker("linkmq_bench_empty"),
        linkmq_postgres_broker("linkmq_bench_backlog"),
        workdir,
        backlog=backlog,
        count=200 if quick else 2000,
        rounds=repeat,
        budget_s=120,
    )
    print(json.dumps(figures, indent=1), flush=True)
    return figures


def run(quick: bool, repeat: int, backlog: int, peers_only: bool) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="linkmq-bench-"))
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, {platform.python_version()}",
        "versions": {
            "celery": celery.__version__,
            "kombu": kombu.__version__,
            "sqlalchemy": sa.__version__,
            **_peer_versions(),
        },
        "quick": quick,
        "results": {} if peers_only else run_brokers(quick, workdir),
    }
    report["comparison"] = run_comparison(quick, repeat, workdir)
    if backlog:
        report["backlog"] = run_backlog(backlog, quick, repeat, workdir)
    return report


def _peer_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("procrastinate", "pgmq", "dramatiq", "dramatiq-pg", "pgqueuer", "redis"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument(
        "--monitoring", action="store_true", help="only the cost of events and Flower on linkmq+"
    )
    parser.add_argument(
        "--peers", action="store_true", help="only linkmq+ side by side with its peers"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of the side-by-side comparison (and, with --monitoring, runs of each "
        "drain); medians are reported (3)",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=None,
        metavar="N",
        help="linkmq+'s claim rate with N tasks waiting against an empty queue (1,000,000; "
        "with --quick 0: off); the backlog is written in SQL, about a minute in all",
    )
    args = parser.parse_args()
    if args.backlog is None:
        args.backlog = 0 if args.quick else 1_000_000
    logging.basicConfig(level=logging.WARNING)
    if args.monitoring:
        report = run_monitoring(args.quick, args.repeat)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "monitoring.json").write_text(json.dumps(report, indent=2) + "\n")
        for name, figures in report["results"].items():
            plain = figures["drain_per_s"]
            print(
                f"{name}: drain {figures['drain_bare_per_s']:.0f}/s without remote control, "
                f"{plain:.0f}/s plain, "
                f"{figures['drain_events_per_s']:.0f}/s with events "
                f"({1 - figures['drain_events_per_s'] / plain:.0%} less), "
                f"{figures['drain_monitored_per_s']:.0f}/s with events and Flower "
                f"({1 - figures['drain_monitored_per_s'] / plain:.0%} less)"
            )
            cpu = [
                (label, figures.get(f"{prefix}_worker_cpu_ms_per_task"))
                for label, prefix in (
                    ("plain", "drain"),
                    ("events", "drain_events"),
                    ("events and Flower", "drain_monitored"),
                )
            ]
            if all(value is not None for _, value in cpu):
                flower_cpu = figures.get("drain_monitored_flower_cpu_ms_per_task", 0.0)
                print(
                    "  CPU per task (ms): worker "
                    + ", ".join(f"{value:.3f} {label}" for label, value in cpu)
                    + f"; Flower {flower_cpu:.3f}"
                )
            if "cleaner_idle_round_ms" in figures:
                print(
                    f"  cleaner: idle round {figures['cleaner_idle_round_ms']:.2f} ms; "
                    f"{figures['cleaner_expired_per_s']:.0f} expired messages/s, longest round "
                    f"{figures['cleaner_longest_round_ms']:.1f} ms"
                )
        return
    report = run(args.quick, args.repeat, args.backlog, args.peers)
    RESULTS.mkdir(exist_ok=True)
    name = ("quick" if args.quick else "latest") + ("-peers" if args.peers else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = table(report)
    (RESULTS / f"{name}.md").write_text(text + "\n")
    chart(report, RESULTS / f"{name}.png")
    print(text)
    print(f"\nwrote {RESULTS / (name + '.json')}, {name}.md and {name}.png")


if __name__ == "__main__":
    main()
