"""The ``link-mq`` console script's entry point (``link_mq_console:main``).

It lives outside the ``link_message_queue`` package on purpose: importing anything in the
package first runs the package's ``__init__``, which imports kombu (about 0.4 s), and a Ctrl-C
landing there, before :func:`link_message_queue.console.main` could guard it, ended the command
with a traceback. Here the guard is in place before the first import of the package."""

from __future__ import annotations

import os
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
    try:
        try:
            return run_console()
        finally:
            # Here, not at exit: a closed pipe's error at exit is only printed ("Exception
            # ignored … BrokenPipeError", exit code 120).
            sys.stdout.flush()
    except BrokenPipeError:
        return reader_gone()


def reader_gone() -> int:
    """The reader of standard output went away (``link-mq status | head -4``): the exit code
    a shell reports for a command SIGPIPE ended (128 + 13), without a traceback. Standard
    output now goes nowhere, so the interpreter's last flush cannot fail again (Python's
    documented recipe, "Note on SIGPIPE" in the ``signal`` module)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + signal.SIGPIPE


def stopped(signum: int = signal.SIGINT) -> int:
    """Say that Ctrl-C (or the stop signal ``signum``) stopped the command; the exit code to
    return: 128 + signum, as a shell reports a command a signal ended (130 for Ctrl-C, 143
    for SIGTERM). Further Ctrl-C presses are ignored from here on: the command is already on
    its way out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    print(f"link-mq: stopped ({name})", file=sys.stderr)
    return 128 + signum
