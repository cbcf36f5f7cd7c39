"""``link-mq``: the command line of link-message-queue."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .demo import run_demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="link-mq", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a workflow end to end on the embedded default")
    demo.add_argument("--users", type=int, default=3, help="how many records the workflow moves")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        run_demo(users=args.users)
        return 0
    raise AssertionError(f"unhandled command {args.command}")  # argparse guards this


if __name__ == "__main__":
    sys.exit(main())
