"""Prometheus metrics: ``link-mq metrics`` prints them, ``link-mq metrics --serve`` answers
``GET /metrics`` in the text exposition format (0.0.4), beside Flower's own task metrics.

Everything is read from the database at scrape time, so one exporter serves every worker:
queue depth, in flight, scheduled (a tick-mode retry's back-off), the oldest ready message's age,
dead letters, live consumers, processes by status, what the last tick recorded (its lag and its
consumer step's duration) and, with a RabbitMQ/Redis broker, what waits in the outbox for the
relay."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sqlalchemy as sa

from ..db import QueueTables, masked, process_tables, read_only
from .gauges import Gauges
from .status import read_status

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_GAUGE_HELP = {
    "tick_lag_seconds": (
        "Seconds from celery beat's emission of the last tick (beat host's clock) to the start"
        " of its consumer step (worker host's clock; 0 if that clock is behind)."
    ),
    "consumer_step_duration_seconds": "Seconds the last tick's consumer step took.",
    "last_tick_timestamp_seconds": "Unix time of the last tick that ran a consumer step.",
    "last_step_processed": "Messages the last tick's consumer step processed.",
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Family:
    def __init__(self, name: str, help_text: str) -> None:
        self.name = f"linkmq_{name}"
        self.lines = [f"# HELP {self.name} {help_text}", f"# TYPE {self.name} gauge"]

    def add(self, value: float, **labels: str) -> _Family:
        rendered = ",".join(f'{key}="{_label(text)}"' for key, text in sorted(labels.items()))
        selector = f"{self.name}{{{rendered}}}" if labels else self.name
        self.lines.append(f"{selector} {float(value)!r}")  # full precision (timestamps)
        return self


def render_metrics(
    engine: sa.Engine,
    tables: QueueTables,
    always_listed: Sequence[str] = (),
    *,
    outbox: bool = False,
) -> str:
    """``always_listed``: queues with series from the start (as in ``read_status``), so an
    alert on the workflow queue never meets an absent series. ``outbox``: the app uses one
    (``Settings.uses_outbox``): its series are there, empty or not."""
    status = read_status(engine, tables, always_listed, outbox=outbox)
    ready = _Family("queue_ready", "Messages ready to be consumed.")
    in_flight = _Family("queue_in_flight", "Messages leased to a consumer (in flight).")
    scheduled = _Family(
        "queue_scheduled",
        "Messages waiting for a tick-mode retry's back-off "
        "(a task waiting for its ETA is held by a worker: in flight).",
    )
    oldest = _Family(
        "queue_oldest_message_age_seconds",
        "Age of the oldest ready message (waiting for a consumer), seconds.",
    )
    for queue in status.queues:
        ready.add(queue.ready, queue=queue.name)
        in_flight.add(queue.leased, queue=queue.name)
        scheduled.add(queue.delayed, queue=queue.name)
        oldest.add(queue.oldest_age_s or 0.0, queue=queue.name)
    families = [
        ready,
        in_flight,
        scheduled,
        oldest,
        _Family("dead_letters", "Messages in dead letters.").add(status.dead_letters),
        _Family("consumers", "Live consumers (heartbeat or lease).").add(len(status.consumers)),
        _processes(engine, tables.prefix),
        *_gauges(engine, tables),
    ]
    if status.outbox is not None:
        families += [
            _Family(
                "outbox_pending", "Workflow messages in the outbox, waiting for the relay."
            ).add(status.outbox.pending),
            _Family(
                "outbox_oldest_message_age_seconds",
                "Age of the oldest message in the outbox, seconds (database clock).",
            ).add(status.outbox.oldest_age_s or 0.0),
        ]
    return "\n".join(line for family in families for line in family.lines) + "\n"


def _processes(engine: sa.Engine, prefix: str) -> _Family:
    family = _Family("processes", "Workflow processes by status.")
    process = process_tables(prefix).process
    with read_only(engine).connect() as connection:
        counts = {
            str(status): int(count)
            for status, count in connection.execute(
                sa.select(process.c.status, sa.func.count()).group_by(process.c.status)
            )
        }
    for status in ("running", "succeeded", "failed"):
        family.add(int(counts.get(status, 0)), status=status)
    return family


def _gauges(engine: sa.Engine, tables: QueueTables) -> Iterable[_Family]:
    recorded = Gauges(engine, tables.gauge).read()
    for name, help_text in _GAUGE_HELP.items():
        if name in recorded:
            yield _Family(name, help_text).add(recorded[name])


def serve(
    engine: sa.Engine,
    tables: QueueTables,
    address: str,
    port: int,
    always_listed: Sequence[str] = (),
    *,
    outbox: bool = False,
) -> None:
    """Answer ``GET /metrics`` (as ``render_metrics``) until interrupted."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is here")
                return
            started = time.perf_counter()
            try:
                body = render_metrics(engine, tables, always_listed, outbox=outbox).encode()
            except sa.exc.SQLAlchemyError as exc:
                logger.error("metrics: reading the database failed: %s", exc)
                self.send_error(503, "the database cannot be read")
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            logger.debug("metrics served in %.1f ms", (time.perf_counter() - started) * 1000)

        def log_message(self, format: str, *args: object) -> None:
            logger.debug(format, *args)

    server = ThreadingHTTPServer((address, port), Handler)
    print(
        f"link-mq: metrics of {masked(engine.url)} on http://{address}:{server.server_port}/metrics",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
