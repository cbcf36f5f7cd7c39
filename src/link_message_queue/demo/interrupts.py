"""Ctrl-C (and SIGTERM, SIGHUP) that cannot be lost while the demo runs.

Python raises KeyboardInterrupt wherever the main thread happens to be when the signal
arrives; inside a finalizer or a weakref callback (garbage collection can run one at any
allocation) the interpreter prints "Exception ignored in ..." and goes on, so the demo ran to
its end after a Ctrl-C; inside a class's ``__set_name__`` it becomes a RuntimeError.
:class:`Interrupts` only records each signal, and :meth:`Interrupts.check` raises it as
KeyboardInterrupt at the demo's next safe point."""

from __future__ import annotations

import signal
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignal(KeyboardInterrupt):
    """The KeyboardInterrupt :meth:`Interrupts.check` raises: ``signum`` is the stop signal's
    number (SIGINT for Ctrl-C), so the command can exit with the shell's 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Interrupts:
    """A context manager: while it is open, each of ``STOP_SIGNALS`` is recorded and raised as
    KeyboardInterrupt by the next :meth:`check` (once). The previous handlers come back on
    exit. Main thread only (Python's rule for handlers)."""

    def __init__(self) -> None:
        self.received: int | None = None  # the first stop signal's number
        self._pending = 0  # stop signals since the last check
        self._handlers: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        for sig in STOP_SIGNALS:
            self._handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)

    def check(self) -> None:
        """Raise :class:`StopSignal` (a KeyboardInterrupt) for the first stop signal, if one
        came since the last check."""
        if self._pending:
            self._pending = 0
            raise StopSignal(self.received or signal.SIGINT)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        # Recorded only, raised by the next check(): raised here it could land anywhere, in a
        # finalizer (swallowed), in __set_name__ (turned into a RuntimeError) or inside Popen
        # after the fork (a process nobody would stop).
        self._pending += 1
