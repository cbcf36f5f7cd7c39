"""The ``link-mq`` console script's entry point (``link_mq_console:main``).

It lives outside the ``link_message_queue`` package on purpose: importing anything in the
package first runs the package's ``__init__``, which imports kombu (about 0.4 s), and a Ctrl-C
landing there, before :func:`link_message_queue.console.main` could guard it, ended the command
with a traceback. Here the guard is in place before the first import of the package."""

from __future__ import annotations

import signal
import sys

INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT: what a shell reports for a command Ctrl-C ended


def main() -> int:
    """Run ``link-mq`` (:func:`link_message_queue.console.main`); Ctrl-C while its modules
    load exits with ``INTERRUPTED_EXIT_CODE`` and one line, as at any later moment."""
    try:
        from link_message_queue.console import main as run_console  # noqa: PLC0415 - guarded
    except KeyboardInterrupt:
        return stopped()
    return run_console()


def stopped(signum: int = signal.SIGINT) -> int:
    """Say that Ctrl-C (or the stop signal ``signum``) stopped the command; the exit code to
    return: 128 + signum, as a shell reports a command a signal ended (130 for Ctrl-C, 143
    for SIGTERM). Further Ctrl-C presses are ignored from here on: the command is already on
    its way out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    print(f"link-mq: stopped ({name})", file=sys.stderr)
    return 128 + signum
