"""The ``link-mq`` command: :func:`link_message_queue.cli.main`, loaded so that Ctrl-C while the
command line's modules still load (a second or so) ends it as Ctrl-C at any later moment does:
one line, exit code 130, no traceback. The console script enters through ``link_mq_console``
(outside the package), which guards the package's own import too."""

from __future__ import annotations

from link_mq_console import INTERRUPTED_EXIT_CODE, stopped

__all__ = ["INTERRUPTED_EXIT_CODE", "main", "stopped"]


def main() -> int:
    """The ``link-mq`` console script: run the CLI; Ctrl-C exits with ``INTERRUPTED_EXIT_CODE`` and
    a one-line message instead of a traceback."""
    try:
        from .cli import main as run_command  # noqa: PLC0415 - loaded under the Ctrl-C guard

        return run_command()
    except KeyboardInterrupt:
        return stopped()
