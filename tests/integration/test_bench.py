"""The benchmark's side-by-side comparison runs: every system's adapter publishes, publishes in
bulk and drains a few tasks with its real worker processes, and the crash scenario finds what a
SIGKILLed worker left. No figure is judged here (timing lives in bench/): only that the work
was done, so the benchmark cannot rot between runs."""

from __future__ import annotations

import socket
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from bench import comparison
from bench.brokers import linkmq_postgres_broker, persisted_redis, redis_persistence
from bench.report import table
from bench.systems import CelerySystem, System, comparison_systems

from ..databases import require_service

pytestmark = pytest.mark.postgres
COUNT = 5
SYSTEMS = [
    "linkmq+ PostgreSQL",
    "procrastinate",
    "kombu-pgmq",
    "dramatiq-pg",
    "PgQueuer",
    "Celery+Redis",
]
TIMES = "\N{MULTIPLICATION SIGN}"


@pytest.fixture(scope="module")
def compared(postgres_admin_url: str) -> Iterator[tuple[list[System], list[str]]]:
    """linkmq+ and every peer that can be had, each on its own new database (dropped
    afterwards), and the notes on the peers skipped."""
    require_service("Redis", 6379)
    prefix = f"linkmq_benchtest_{uuid.uuid4().hex[:8]}"
    try:
        yield comparison_systems(linkmq_postgres_broker(prefix), database_prefix=prefix)
    finally:
        admin = sa.create_engine(
            postgres_admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        with admin.connect() as connection:
            names = connection.execute(
                sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                {"p": f"{prefix}%"},
            ).scalars()
            for name in list(names):
                connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def systems(compared: tuple[list[System], list[str]]) -> list[System]:
    return compared[0]


def _system(compared: tuple[list[System], list[str]], name: str) -> System:
    """The system ``name``; the test is skipped, with the note saying why, when it cannot be
    had here (a peer's package missing)."""
    found, notes = compared
    for system in found:
        if system.name == name:
            return system
    pytest.skip(next(note for note in notes if note.startswith(f"{name} skipped")))


def test_bench__systems_are_linkmq_and_its_peers_or_a_note_why_not(
    compared: tuple[list[System], list[str]],
) -> None:
    found, notes = compared
    names = [system.name for system in found]
    skipped = [note.partition(" skipped: ")[0] for note in notes]

    assert names == [name for name in SYSTEMS if name not in skipped]
    assert sorted(names + skipped) == sorted(SYSTEMS)


@pytest.mark.parametrize("name", SYSTEMS)
def test_bench__each_system_publishes_and_drains(
    compared: tuple[list[System], list[str]], name: str, tmp_path: Path
) -> None:
    system = _system(compared, name)

    published = comparison.publish_one_by_one(system, COUNT)
    assert published["publish_per_s"] > 0
    # linkmq+ also reports its publish without waiting for the WAL flush
    assert ("publish_unflushed_per_s" in published) == (name == "linkmq+ PostgreSQL")
    assert published.get("publish_unflushed_per_s", 1) > 0
    bulk = comparison.publish_bulk(system, COUNT)
    if name == "dramatiq-pg":
        assert bulk == {}  # dramatiq has no bulk publish: no figure
    else:
        assert bulk["bulk_per_s"] > 0
    # linkmq+ also reports Celery's group inside publish_on() beside send_many
    assert ("bulk_group_per_s" in bulk) == (name == "linkmq+ PostgreSQL")
    drained = comparison.drain(system, tmp_path, COUNT, budget_s=60)

    assert drained["drained"] == COUNT + 1  # and the warm-up task
    assert drained["drain_per_s"] > 0


def test_bench__redis_that_fsyncs_each_write_publishes_drains_and_stops(tmp_path: Path) -> None:
    # The comparison's durable Redis: a server of its own, each write on disk before the reply.
    with persisted_redis(tmp_path / "redis") as broker:
        assert broker is not None  # redis-server is installed here (CI installs it too)
        system = CelerySystem(broker)
        assert redis_persistence(broker.url) == 'appendonly yes, appendfsync always, save ""'

        assert comparison.publish_one_by_one(system, COUNT)["publish_per_s"] > 0
        drained = comparison.drain(system, tmp_path, COUNT, budget_s=60)
        # Its append-only file holds the publishes (Redis 7 keeps it in appendonlydir).
        written = sum(path.stat().st_size for path in (tmp_path / "redis").rglob("*.aof*"))

    assert drained["drained"] == COUNT + 1
    assert written > 0
    port = int(broker.url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(ConnectionRefusedError):  # stopped on leaving
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_bench__latency_is_measured_on_every_task(
    compared: tuple[list[System], list[str]], tmp_path: Path
) -> None:
    # On procrastinate: the scenario is the same for every system, and its workers stop fastest.
    procrastinate = _system(compared, "procrastinate")

    measured = comparison.latency(procrastinate, tmp_path, COUNT)

    assert measured["latency_n"] == COUNT
    assert 0 < measured["latency_p50_ms"] <= measured["latency_p99_ms"]


def test_bench__crash_counts_tasks_run_again_after_sigkill(
    systems: list[System], tmp_path: Path
) -> None:
    # linkmq+ with a 2 s lease: the killed worker's tasks run again on the next one.
    linkmq = systems[0]
    assert isinstance(linkmq, CelerySystem)
    short_lease = CelerySystem(replace(linkmq.broker, transport_options={"lease_s": 2.0}))

    assert comparison.crash(short_lease, tmp_path, budget_s=30) == {"crash_lost": 0}


def test_bench__report_has_a_row_per_measure_with_ratios() -> None:
    report = {
        "when": "now",
        "machine": "here",
        "versions": {"celery": "5", "kombu": "5", "sqlalchemy": "2"},
        "quick": True,
        "results": {},
        "comparison": {
            "repeat": 3,
            "counts": {
                "publish": 10,
                "drain": 10,
                "latency": 10,
                "crash_tasks": 2,
                "crash_budget_s": 45.0,
            },
            "notes": ["kombu-pgmq skipped: why"],
            "results": {
                "linkmq+ PostgreSQL": {
                    "publish_per_s": 1000.0,
                    "publish_unflushed_per_s": 3000.0,
                    "latency_p50_ms": 5.0,
                    "crash_lost": 0.0,
                },
                "procrastinate": {
                    "publish_per_s": 2000.0,
                    "latency_p50_ms": 10.0,
                    "crash_lost": 2.0,
                },
            },
        },
    }

    text = table(report)

    assert f"| publish one by one, msg/s | 1,000 | 2,000 (0.5{TIMES}) |" in text
    # linkmq+'s publish without the WAL flush wait, beside each peer's one-by-one publish
    assert (
        "| publish one by one, linkmq+ not waiting for the WAL flush "
        f'(`publish_synchronous_commit="off"`), msg/s | 3,000 | 2,000 (1.5{TIMES}) |'
    ) in text
    assert f"| enqueue→start p50 at 20 msg/s, ms | 5.0 | 10.0 (2.0{TIMES}) |" in text
    assert "| SIGKILL mid-task: of 2 tasks, not run again within 45 s | 0 | 2 |" in text
    assert "- kombu-pgmq skipped: why" in text


def test_bench__a_peer_that_cannot_be_had_is_skipped_with_a_note(
    systems: list[System], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each peer's package missing (None in sys.modules: its import fails): no database is
    # made for it, and the run goes on without it.
    for module in ("procrastinate", "pgmq.install", "dramatiq_pg", "pgqueuer"):
        monkeypatch.setitem(sys.modules, module, None)
    linkmq = systems[0]
    assert isinstance(linkmq, CelerySystem)

    found, notes = comparison_systems(linkmq.broker, database_prefix="linkmq_benchtest_none")

    assert [system.name for system in found] == ["linkmq+ PostgreSQL", "Celery+Redis"]
    assert [note.partition(": ")[0] for note in notes] == [
        "procrastinate skipped",
        "kombu-pgmq skipped",
        "dramatiq-pg skipped",
        "PgQueuer skipped",
    ]
    assert all("pip install" in note for note in notes)
