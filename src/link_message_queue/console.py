"""The ``link-mq`` console script: :func:`link_message_queue.cli.main`, loaded so that Ctrl-C
while the command line's modules still load (a second or so) ends it as Ctrl-C at any later
moment does: one line, exit code 130, no traceback."""

from __future__ import annotations

import signal
import sys

INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT: what a shell reports for a command Ctrl-C ended


def main() -> int:
    """The ``link-mq`` console script: run the CLI; Ctrl-C exits with ``INTERRUPTED_EXIT_CODE`` and
    a one-line message instead of a traceback."""
    try:
        from .cli import main as run_command  # noqa: PLC0415 - loaded under the Ctrl-C guard

        return run_command()
    except KeyboardInterrupt:
        return stopped()


def stopped() -> int:
    """Say that Ctrl-C stopped the command; the exit code to return. Further Ctrl-C presses
    are ignored from here on: the command is already on its way out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print("link-mq: stopped (Ctrl-C)", file=sys.stderr)
    return INTERRUPTED_EXIT_CODE
