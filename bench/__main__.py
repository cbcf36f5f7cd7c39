"""``python -m bench`` (or ``make bench``): every scenario on kombu's sqla+, linkmq+ and Redis
in one run; prints ratios, writes ``bench/results/latest.json`` and ``latest.png``.

Needs the PostgreSQL of the test setup (127.0.0.1:5432, trust auth); Redis is used when it
answers on 127.0.0.1:6379. ``--quick`` shrinks every count for a smoke run.
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

from . import scenarios
from .brokers import Broker, postgres_brokers, redis_brokers, sqlite_brokers
from .report import chart, table

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


def run(quick: bool) -> dict[str, Any]:
    scale = 0.1 if quick else 1.0
    n_publish = int(2000 * scale)
    n_drain = int(5000 * scale)
    n_history = int(300_000 * scale)
    workdir = Path(tempfile.mkdtemp(prefix="linkmq-bench-"))
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
        measured |= scenarios.latency(broker, workdir, int(200 * max(scale, 0.25)))
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
    return {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, {platform.python_version()}",
        "versions": {
            "celery": celery.__version__,
            "kombu": kombu.__version__,
            "sqlalchemy": sa.__version__,
        },
        "quick": quick,
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument(
        "--monitoring", action="store_true", help="only the cost of events and Flower on linkmq+"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="--monitoring: runs of each drain; medians are reported (3)",
    )
    args = parser.parse_args()
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
    report = run(args.quick)
    RESULTS.mkdir(exist_ok=True)
    name = "quick" if args.quick else "latest"
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    text = table(report)
    (RESULTS / f"{name}.md").write_text(text + "\n")
    chart(report, RESULTS / f"{name}.png")
    print(text)
    print(f"\nwrote {RESULTS / (name + '.json')}, {name}.md and {name}.png")


if __name__ == "__main__":
    main()
