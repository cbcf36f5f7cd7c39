"""The publishing process's cost of one-by-one ``task.delay()``: messages per second and CPU
milliseconds per message (``time.process_time``, this process only) for linkmq+ on a fresh
PostgreSQL database (``linkmq+``; ``linkmq+async``: the same with the transport option
``publish_synchronous_commit="off"``, on a fresh database of its own), Celery+Redis (the machine's Redis as it is configured; ``Redis fsync``: a Redis of the
benchmark's own that fsyncs each write before replying, ``appendfsync always``), Celery on kombu's in-memory transport (Celery and kombu
alone, no broker work), the same with a blocking wait of ``--wait-ms`` per publish (``memory+wait``:
what blocking once per message costs the publisher's CPU, with no broker work at all) and
dramatiq-pg (``broker.enqueue``, where it is installed), in one run, rotated over ``--repeat``
rounds, medians printed.

    python -m bench.publish_profile [--count 3000] [--repeat 3] [--wait-ms 0.4] [--profile linkmq+]

``--profile NAME`` runs one more round of system NAME under cProfile and prints its top
entries (by own and by cumulative CPU time). Not part of ``make bench``: a tool for the
publish path's CPU (issue 18)."""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import select
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from celery import Celery
from kombu.transport import memory

from .brokers import (
    REDIS_URL,
    fresh_postgres,
    linkmq_postgres_broker,
    persisted_redis,
    redis_persistence,
)
from .systems import libpq_url

# One system's measured publish: (messages per second, CPU ms per message).
Figures = tuple[float, float]


def _celery_publisher(
    url: str, transport_options: dict[str, Any] | None = None
) -> Callable[[int], Figures]:
    app = Celery("bench-publish", broker=url)
    app.conf.update(
        task_serializer="json",
        task_default_queue="bench",
        broker_transport_options=transport_options or {},
    )

    @app.task(name="bench.work", shared=False)
    def work(sent_at: float, duration_s: float) -> None:
        raise AssertionError("never run here")

    work.delay(time.time(), 0.0)  # warm-up: connection, declarations, producer pool

    def publish(count: int) -> Figures:
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(count):
            work.delay(time.time(), 0.0)
        return _figures(count, time.perf_counter() - wall, time.process_time() - cpu)

    return publish


def _waiting(publish: Callable[[int], Figures], wait_s: float) -> Callable[[int], Figures]:
    """``publish`` on kombu's memory transport, each message followed by a blocking wait of
    ``wait_s`` (a select on a socket that never becomes readable: the process sleeps as it
    does waiting for a server's reply)."""
    # Both ends stay referenced (by the closure): a closed peer would make the socket readable.
    ends = socket.socketpair()
    plain_put = memory.Channel._put

    def put_and_wait(channel: Any, queue: str, message: Any, **kwargs: Any) -> None:
        plain_put(channel, queue, message, **kwargs)
        select.select([ends[0]], [], [], wait_s)

    def waiting_publish(count: int) -> Figures:
        memory.Channel._put = put_and_wait
        try:
            return publish(count)
        finally:
            memory.Channel._put = plain_put

    return waiting_publish


def _dramatiq_publisher() -> Callable[[int], Figures] | None:
    try:
        from dramatiq import Message

        from .dramatiq_app import broker as dramatiq_broker
    except ImportError:
        return None
    dsn = libpq_url(fresh_postgres("linkmq_bench_publish_dramatiq"))
    import psycopg
    from dramatiq_pg import generate_init_sql

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(generate_init_sql())
    broker = dramatiq_broker(dsn)

    def message() -> Any:
        return Message(
            queue_name="bench",
            actor_name="bench.work",
            args=(time.time(), 0.0),
            kwargs={},
            options={},
        )

    broker.enqueue(message())  # warm-up

    def publish(count: int) -> Figures:
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(count):
            broker.enqueue(message())
        return _figures(count, time.perf_counter() - wall, time.process_time() - cpu)

    return publish


def _figures(count: int, wall_s: float, cpu_s: float) -> Figures:
    return count / wall_s, cpu_s * 1000 / count


def publishers(stack: ExitStack, wait_s: float = 0.0004) -> dict[str, Callable[[int], Figures]]:
    """Each system's publish (name → publish(count)), warmed up, on fresh storage; servers
    the benchmark starts itself stop when ``stack`` closes."""
    linkmq = linkmq_postgres_broker("linkmq_bench_publish")
    linkmq_async = linkmq_postgres_broker("linkmq_bench_publish_async")
    in_memory = _celery_publisher("memory://")
    systems = {
        "linkmq+": _celery_publisher(linkmq.url),
        "linkmq+async": _celery_publisher(linkmq_async.url, {"publish_synchronous_commit": "off"}),
        "Redis": _celery_publisher(REDIS_URL),
        "memory": in_memory,
        "memory+wait": _waiting(in_memory, wait_s),
    }
    durable_redis = stack.enter_context(
        persisted_redis(Path(stack.enter_context(tempfile.TemporaryDirectory())))
    )
    if durable_redis is not None:
        systems["Redis fsync"] = _celery_publisher(durable_redis.url)
    dramatiq = _dramatiq_publisher()
    if dramatiq is not None:
        systems["dramatiq-pg"] = dramatiq
    return systems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--wait-ms", type=float, default=0.4, help="memory+wait's wait")
    parser.add_argument("--profile", help="profile one more round of this system")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with ExitStack() as stack:
        _run(args, publishers(stack, args.wait_ms / 1000))


def _run(args: argparse.Namespace, systems: dict[str, Callable[[int], Figures]]) -> None:
    figures: dict[str, list[Figures]] = {name: [] for name in systems}
    names = list(systems)
    for round_ in range(args.repeat):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            figures[name].append(systems[name](args.count))
    redis_rate = statistics.median(rate for rate, _ in figures["Redis"])
    print(f"{args.count} x delay(), medians of {args.repeat}; memory+wait: {args.wait_ms} ms")
    print(f"Redis keeps: {redis_persistence()}")
    print(f"{'system':<12} {'msg/s':>8} {'CPU ms/msg':>11} {'vs Redis':>9}")
    for name, measured in figures.items():
        rate = statistics.median(rate for rate, _ in measured)
        cpu_ms = statistics.median(cpu for _, cpu in measured)
        print(f"{name:<12} {rate:>8,.0f} {cpu_ms:>11.3f} {rate / redis_rate:>8.2f}x")
    if args.profile:
        # CPU time, not wall time: a publish's wait for the server is not the publisher's cost.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        systems[args.profile](args.count)
        profiler.disable()
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.top)
            print(out.getvalue())


if __name__ == "__main__":
    main()
