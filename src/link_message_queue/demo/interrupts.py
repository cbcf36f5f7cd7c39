"""Ctrl-C (and SIGTERM, SIGHUP) that cannot be lost while the demo runs.

Python raises KeyboardInterrupt wherever the main thread happens to be when the signal
arrives; inside a finalizer or a weakref callback (garbage collection can run one at any
allocation) the interpreter prints "Exception ignored in ..." and goes on, so the demo ran to
its end after a Ctrl-C; inside a class's ``__set_name__`` it becomes a RuntimeError.
:class:`Interrupts` only records each signal, and :meth:`Interrupts.check` raises it as
KeyboardInterrupt at the demo's next safe point."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
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
    KeyboardInterrupt by the next :meth:`check` (once); a KeyboardInterrupt some other code
    raised and Python swallowed (an unraisable exception) is counted the same way instead of
    printed. The previous handlers and ``sys.unraisablehook`` come back on exit. Main thread
    only (Python's rule for handlers)."""

    def __init__(self) -> None:
        self.received: int | None = None  # the first stop signal's number
        self._swallowed = 0  # KeyboardInterrupts an "Exception ignored" swallowed, or deferred
        self._deferring = False
        self._handlers: dict[int, Any] = {}
        self._unraisable_hook = sys.unraisablehook

    def __enter__(self) -> Interrupts:
        for sig in STOP_SIGNALS:
            self._handlers[sig] = signal.signal(sig, self._on_signal)
        self._unraisable_hook = sys.unraisablehook
        sys.unraisablehook = self._on_unraisable
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        sys.unraisablehook = self._unraisable_hook

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A block a stop signal does not cut short: one that arrives inside it is raised when
        it ends (starting a process and recording it, so that it is stopped later)."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        self.check()

    def check(self) -> None:
        """Raise :class:`StopSignal` (a KeyboardInterrupt) for the first stop signal, if one
        came (or a KeyboardInterrupt was swallowed) since the last check."""
        if self._swallowed:
            self._swallowed = 0
            raise StopSignal(self.received or signal.SIGINT)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        # Recorded only, raised by the next check(): raised here it could land anywhere, in a
        # finalizer (swallowed) or in __set_name__ (turned into a RuntimeError).
        self._swallowed += 1

    def _on_unraisable(self, unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            self._swallowed += 1  # raised again by check(); no traceback for a Ctrl-C
            return
        self._unraisable_hook(unraisable)
