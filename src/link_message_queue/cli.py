"""``link-mq``: the command line of link-message-queue."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from celery import Celery

from . import __version__
from .bridge.dead_letters import DeadLetter
from .bridge.errors import BridgeError
from .celery_config import celery_config
from .console import stopped
from .db import database_for, ensure_schema, masked, queue_tables, upgrade
from .demo.runner import DemoError, run_demo
from .engine import EngineError
from .messages import InvalidMessageError, TickOccurred, decode_processing_message
from .monitoring.metrics import render_metrics, serve
from .monitoring.status import read_status, render
from .processor.errors import ProcessorError
from .processor.report import ProcessReport
from .runtime import Runtime, build_runtime
from .services import ServiceError
from .settings import OTHER_VARIABLES, Settings, SettingsError
from .text import counted, one_line, table
from .transport import TransportError, TransportOptions

DESCRIPTION = (
    "link-mq: the command line of link-message-queue (workflow messages as Celery tasks on a "
    "queue in the application's database)."
)
# A dead letter's error is cut to fit the terminal, but never below this many characters.
_MIN_ERROR_WIDTH = 30


def _environment_help() -> str:
    """The epilog of ``link-mq --help``: every LINK_MQ_* variable and its default."""
    lines = ["environment (every command reads these; unset means the default):"]
    for spec in dataclasses.fields(Settings):
        shown = spec.metadata["shown_default"] or spec.default
        shown = "unset" if shown is None else str(shown).replace("`", "")
        if spec.metadata["unit"] == "s":  # seconds, not milliseconds
            shown = f"{shown} s"
        lines.append(f"  {spec.metadata['variable']:<26} {shown}")
    for name, (default, _) in OTHER_VARIABLES.items():
        lines.append(f"  {name:<26} {default}")
    return "\n".join(lines)


# Row ids are 64-bit signed integers on every database (SQLite's INTEGER, PostgreSQL's BIGINT).
_MAX_ROW_ID = 2**63 - 1


def _row_id(text: str) -> int:
    """A dead letter's id as typed: a whole number from 1 to 2**63 - 1 (argparse reports
    anything else as a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= _MAX_ROW_ID:
        raise argparse.ArgumentTypeError(f"{text} is not an id (1 to {_MAX_ROW_ID})")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``link-mq`` argument parser with every sub-command; the epilog lists the environment
    variables it reads."""
    parser = argparse.ArgumentParser(
        prog="link-mq",
        description=DESCRIPTION,
        epilog=_environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"link-mq {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the whole system on the embedded default")
    demo.add_argument("--users", type=int, default=50, help="users to import from the CSV file")
    demo.add_argument("--chunk", type=int, default=10, help="users per chunk (one sub-process)")
    demo.add_argument(
        "--external",
        action="store_true",
        help="use the worker and beat already running (with the demo's LINK_MQ_CONFIG)",
    )
    demo.add_argument(
        "--timeout", type=float, default=120.0, help="give up after this many seconds"
    )

    db = commands.add_parser("db", help="manage the tables in the application database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser(
        "upgrade", help="create or upgrade the tables (idempotent, safe to run concurrently)"
    )
    db_upgrade.add_argument("--database-url", help="SQLAlchemy URL (default: LINK_MQ_DATABASE_URL)")

    commands.add_parser("tick", help="emit one TickOccurred here and now (for cron, or no beat)")

    status = commands.add_parser(
        "status", help="queues, in-flight messages, dead letters, consumers"
    )
    status.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    status.add_argument("--watch", action="store_true", help="refresh in place until Ctrl-C")
    status.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")

    enqueue = commands.add_parser("enqueue", help="queue a JSON workflow message (FILE or -)")
    enqueue.add_argument(
        "file", help="a file with the message in the prooph service-bus layout, or -"
    )

    dead = commands.add_parser("dead-letters", help="inspect and requeue dead letters")
    dead_commands = dead.add_subparsers(dest="dead_command", required=True)
    dead_commands.add_parser("list", help="a table, one line per dead letter, oldest first")
    show = dead_commands.add_parser("show", help="one dead letter in full")
    show.add_argument("id", type=_row_id)
    show.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    requeue = dead_commands.add_parser("requeue", help="put dead letters back on their queue")
    requeue.add_argument("ids", type=_row_id, nargs="*")
    requeue.add_argument("--all", action="store_true", help="requeue every dead letter")
    dead_commands.add_parser("purge", help="delete every dead letter")

    relay = commands.add_parser(
        "relay", help="RabbitMQ/Redis brokers: publish the outbox (a long-running process)"
    )
    relay.add_argument("--once", action="store_true", help="relay what is there now, then exit")
    relay.add_argument(
        "--interval", type=float, default=0.2, help="seconds to wait when the outbox is empty"
    )

    metrics = commands.add_parser("metrics", help="Prometheus metrics (print, or --serve)")
    metrics.add_argument("--serve", action="store_true", help="answer GET /metrics over HTTP")
    metrics.add_argument("--address", default="127.0.0.1", help="address to listen on")
    metrics.add_argument("--port", type=int, default=9808, help="port to listen on")

    processes = commands.add_parser("processes", help="workflow processes and their tasks")
    process_commands = processes.add_subparsers(dest="process_command", required=True)
    process_list = process_commands.add_parser("list", help="the latest processes, newest first")
    process_list.add_argument("--limit", type=int, default=50)
    process_list.add_argument("--all", action="store_true", help="sub-processes too")
    process_show = process_commands.add_parser("show", help="one process: every task and its log")
    process_show.add_argument("id", help="the process id (or a unique start of it)")
    process_show.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``link-mq`` with ``argv`` (``sys.argv[1:]`` when None); return the exit code. The
    project's own errors (settings, transport, bridge, engine, services, processor, demo,
    database, an invalid message) are printed to stderr as ``link-mq: <what to do>`` with exit
    code 2, not raised; argparse exits on bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "demo":
            summary = run_demo(
                users=args.users, chunk=args.chunk, timeout_s=args.timeout, external=args.external
            )
            return 0 if summary.succeeded else 1
        if args.command == "db":
            return _db_upgrade(args.database_url or settings.database_url, settings)
        if args.command == "status":
            return _status(settings, args)
        if args.command == "tick":
            return _tick(_runtime(settings))
        if args.command == "enqueue":
            return _enqueue(_runtime(settings), args.file)
        if args.command == "dead-letters":
            if args.dead_command == "requeue" and not (args.ids or args.all):
                parser.error("dead-letters requeue needs ids or --all")
            return _dead_letters(_runtime(settings), args)
        if args.command == "processes":
            return _processes(settings, args)
        if args.command == "metrics":
            return _metrics(settings, args)
        if args.command == "relay":
            return _relay(_runtime(settings), args)
    except (
        SettingsError,
        TransportError,
        BridgeError,
        EngineError,
        ServiceError,
        ProcessorError,
    ) as exc:
        print(f"link-mq: {exc}", file=sys.stderr)
        return 2
    except DemoError as exc:
        print(f"link-mq: demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # the demo has stopped its worker and beat on the way out
        return stopped(getattr(exc, "signum", signal.SIGINT))
    except InvalidMessageError as exc:
        print(f"link-mq: the message is invalid: {exc}", file=sys.stderr)
        return 2
    except sa.exc.SQLAlchemyError as exc:
        # The driver's own words (never the URL's password), without SQLAlchemy's SQL echo.
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"link-mq: database error: {reason}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")  # argparse guards this


def _engine(settings: Settings, *, require_schema: bool = True) -> sa.Engine:
    """The application database's engine, its tables checked as a worker checks them: the
    embedded SQLite default creates them on use; elsewhere (with ``require_schema``, which
    connects) a missing schema says to run ``link-mq db upgrade``."""
    options = TransportOptions(table_prefix=settings.table_prefix)
    engine = database_for(settings.database_url, options).engine
    if require_schema or engine.dialect.name == "sqlite":
        ensure_schema(engine, settings.table_prefix)
    return engine


def _runtime(settings: Settings) -> Runtime:
    app = Celery("link-mq-cli")
    app.conf.update(celery_config(settings))
    _engine(settings)
    return build_runtime(app, settings)


def _db_upgrade(database_url: str, settings: Settings) -> int:
    options = TransportOptions(table_prefix=settings.table_prefix)
    revision = upgrade(database_for(database_url, options).engine, settings.table_prefix)
    print(f"link-mq: {masked(database_url)} is at schema revision {revision}")
    return 0


def _status(settings: Settings, args: argparse.Namespace) -> int:
    engine = _engine(settings)
    tables = queue_tables(settings.table_prefix)
    while True:
        current = read_status(
            engine, tables, always_listed=[settings.queue], outbox=settings.uses_outbox
        )
        if args.json:
            print(json.dumps(current.as_dict()))
        elif args.watch:
            print("\x1b[H\x1b[2J" + render(current), flush=True)  # home, clear: a live table
        else:
            print(render(current))
        if not args.watch:
            return 0
        try:
            time.sleep(args.interval)
        except KeyboardInterrupt:
            return 0


def _tick(runtime: Runtime) -> int:
    runtime.ticks.publish(TickOccurred())
    print(json.dumps(runtime.step_listener.last_result.as_dict()))
    return 0


def _enqueue(runtime: Runtime, file: str) -> int:
    text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    message = decode_processing_message(text)
    runtime.producer.dispatch(message)
    print(f"link-mq: queued {message.name} {message.uuid} for {message.target}")
    return 0


def _dead_letters(runtime: Runtime, args: argparse.Namespace) -> int:
    letters = runtime.dead_letters
    if args.dead_command == "list":
        print("\n".join(dead_letter_table(letters.recent(limit=1000))))
        return 0
    if args.dead_command == "show":
        found = letters.get(args.id)
        if found is None:
            print(f"link-mq: no dead letter {args.id}", file=sys.stderr)
            return 1
        print(json.dumps(found.__dict__, indent=2) if args.json else show_dead_letter(found))
        return 0
    if args.dead_command == "requeue":
        try:
            requeued = letters.requeue(runtime.producer, None if args.all else args.ids)
        except LookupError as exc:
            print(f"link-mq: {exc}", file=sys.stderr)
            return 1
        print(f"link-mq: requeued {counted(len(requeued), 'dead letter')}")
        return 0
    if args.dead_command == "purge":
        print(f"link-mq: deleted {counted(letters.purge(), 'dead letter')}")
        return 0
    raise AssertionError(args.dead_command)


def _iso(timestamp_s: float | None) -> str:
    if timestamp_s is None:
        return "-"
    return datetime.fromtimestamp(timestamp_s, UTC).isoformat(timespec="milliseconds")


def dead_letter_table(letters: Sequence[DeadLetter], width: int | None = None) -> list[str]:
    """``link-mq dead-letters list``: a header and one line per letter, its error folded onto
    one line and cut with … to fit ``width`` (default: the terminal's)."""
    if not letters:
        return ["no dead letters"]
    rows = [
        (
            letter.id,
            _iso(letter.failed_at),
            letter.reason,
            letter.attempts,
            one_line(letter.message_name or "-", 60),
            f"{letter.exception_type.rsplit('.', 1)[-1]}: {letter.exception_message}",
        )
        for letter in letters
    ]
    header = ("id", "failed at (UTC)", "reason", "attempts", "message", "error")
    fixed = table(header[:-1], [row[:-1] for row in rows], right_aligned=(0, 3))
    total = width or shutil.get_terminal_size((120, 24)).columns
    error_width = max(total - len(max(fixed, key=len)) - 2, _MIN_ERROR_WIDTH)
    cut = [(*row[:-1], one_line(row[-1], error_width)) for row in rows]
    return table(header, cut, right_aligned=(0, 3))


def show_dead_letter(letter: DeadLetter) -> str:
    """``link-mq dead-letters show``: every field under its name, times in ISO-8601 (UTC), the
    traceback and the body as they were kept."""
    fields = [
        ("id", str(letter.id)),
        ("queue", letter.queue),
        ("message", letter.message_name or "-"),
        ("message uuid", letter.message_uuid or "-"),
        ("reason", letter.reason),
        ("attempts", str(letter.attempts)),
        *([("first attempt", _iso(letter.first_attempt_at))] if letter.first_attempt_at else []),
        ("failed at", _iso(letter.failed_at)),
        ("error", f"{letter.exception_type}: {letter.exception_message}"),
    ]
    lines = [f"{name + ':':<15}{value}" for name, value in fields]
    lines += ["", "traceback:", letter.traceback.rstrip(), "", "body:", letter.body]
    return "\n".join(lines)


def _relay(runtime: Runtime, args: argparse.Namespace) -> int:
    if not runtime.settings.uses_outbox:
        print(
            "link-mq: the broker is linkmq+ (the application database): there is no outbox",
            file=sys.stderr,
        )
        return 2
    if args.once:
        print(f"link-mq: relayed {runtime.relay.run_once()} messages")
        return 0
    print(
        f"link-mq: relaying the outbox of {masked(runtime.settings.database_url)} "
        f"to {runtime.settings.describe()['broker_url']}",
        flush=True,
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with contextlib.suppress(KeyboardInterrupt):
        runtime.relay.run_forever(args.interval, stop=stopping.is_set)
    return 0


def _metrics(settings: Settings, args: argparse.Namespace) -> int:
    tables = queue_tables(settings.table_prefix)
    if args.serve:
        # An exporter starts whatever the database's state: a scrape it cannot answer is a 503.
        engine = _engine(settings, require_schema=False)
        serve(
            engine,
            tables,
            args.address,
            args.port,
            always_listed=[settings.queue],
            outbox=settings.uses_outbox,
        )
    else:
        rendered = render_metrics(
            _engine(settings), tables, always_listed=[settings.queue], outbox=settings.uses_outbox
        )
        print(rendered, end="")
    return 0


def _processes(settings: Settings, args: argparse.Namespace) -> int:
    engine = _engine(settings)
    report = ProcessReport(engine, settings.table_prefix)
    if args.process_command == "list":
        print("\n".join(report.list_lines(args.limit, sub_processes=args.all)))
        return 0
    found = report.find(args.id)
    if found is None:
        print(f"link-mq: no process (or more than one) with id {args.id!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.as_dict(*found)))
    else:
        print(report.show_text(*found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
