"""``link-mq``: the command line of link-message-queue."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .demo import run_demo
from .settings import Settings, SettingsError
from .transport import TransportError, upgrade
from .transport.engines import engine_for, masked
from .transport.options import TransportOptions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="link-mq", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a workflow end to end on the embedded default")
    demo.add_argument("--users", type=int, default=3, help="how many records the workflow moves")
    db = commands.add_parser("db", help="manage the queue tables in the application database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser(
        "upgrade", help="create or upgrade the tables (idempotent, safe to run concurrently)"
    )
    db_upgrade.add_argument("--database-url", help="SQLAlchemy URL (default: LINK_MQ_DATABASE_URL)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "demo":
            run_demo(users=args.users)
            return 0
        if args.command == "db":
            return _db_upgrade(args.database_url or settings.database_url, settings)
    except (SettingsError, TransportError) as exc:
        print(f"link-mq: {exc}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")  # argparse guards this


def _db_upgrade(database_url: str, settings: Settings) -> int:
    options = TransportOptions(table_prefix=settings.table_prefix)
    engine = engine_for(database_url, options)
    revision = upgrade(engine, settings.table_prefix)
    print(f"link-mq: {masked(database_url)} is at schema revision {revision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
