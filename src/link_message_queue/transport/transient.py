"""Transient messages (``delivery_mode`` 1: Celery's events, remote-control commands and
replies) written in batches by a thread, off the publisher's path.

AMQP lets a broker lose a transient message on restart; here one may be lost if the publishing
process dies within ``transient_flush_s`` of publishing it. In exchange, a worker that sends
three events per task pays one small COPY (PostgreSQL) or multi-row INSERT per batch instead
of a commit per event.
Persistent messages (every task) never take this path.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable

from ..db import after_fork_in_child, masked
from .rows import PendingRow
from .store import MessageStore

logger = logging.getLogger(__name__)

# After a failed write, wait this long before the next attempt (the rows stay buffered).
_RETRY_DELAY_S = 0.5


class TransientWriter:
    """A buffer of transient rows and the thread that writes them, one transaction a batch.

    Order is kept: rows are written in the order they were buffered. A full buffer is written
    by the publisher before it adds its row: back-pressure, never a silent drop."""

    def __init__(
        self,
        store: MessageStore,
        on_written: Callable[[set[str]], None],
        flush_interval_s: float,
        max_buffered: int,
    ) -> None:
        self._store = store
        self._on_written = on_written
        self._flush_interval_s = flush_interval_s
        self._max_buffered = max_buffered
        self._condition = threading.Condition()
        self._rows: list[PendingRow] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        # Monotonic; the first batch goes no sooner than one interval after the writer began.
        self._last_write_at = time.monotonic()
        # Only the writer thread (or close()) writes; this keeps batches in order.
        self._write_lock = threading.Lock()
        _writers.add(self)

    def offer(self, row: PendingRow) -> None:
        """Buffer ``row`` for the next batch. When the buffer is full the caller writes it
        first (back-pressure, in order; a database error reaches the publisher)."""
        with self._condition:
            full = len(self._rows) >= self._max_buffered
        if full:
            self.flush()
        with self._condition:
            self._rows.append(row)
            if self._thread is None:
                self._start()
            self._condition.notify()

    def flush(self) -> None:
        """Write everything buffered now; raises (keeping the rows) if the database refuses."""
        with self._write_lock:
            rows = self._take()
            try:
                self._write(rows)
            except BaseException:
                self._give_back(rows)
                raise

    def close(self) -> None:
        """Stop the writer thread (waiting up to 5 s) and write what is still buffered; a database
        error of that last write propagates."""
        with self._condition:
            self._stopping = True
            self._condition.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        with self._condition:
            self._thread, self._stopping = None, False
        self.flush()

    @property
    def buffered(self) -> int:
        """How many transient messages wait to be written."""
        with self._condition:
            return len(self._rows)

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="linkmq-transient", daemon=True)
        self._thread.start()

    def _reset_in_child(self) -> None:
        # A forked child must not write its parent's rows a second time, nor wait on a thread
        # or a lock that did not survive the fork.
        self._condition = threading.Condition()
        self._write_lock = threading.Lock()
        self._rows = []
        self._thread = None
        self._stopping = False
        self._last_write_at = time.monotonic()

    def _take(self) -> list[PendingRow]:
        with self._condition:
            rows, self._rows = self._rows, []
            return rows

    def _give_back(self, rows: list[PendingRow]) -> None:
        with self._condition:
            self._rows[:0] = rows

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._rows or self._stopping)
                if self._stopping:
                    return
            # At most one batch per interval: a message after a quiet spell (a remote-control
            # command or reply) goes at once; under load, a worker's events gather.
            wait_s = self._last_write_at + self._flush_interval_s - time.monotonic()
            if wait_s > 0 and self._stopped_within(wait_s):
                return  # close() writes what is buffered
            self._last_write_at = time.monotonic()
            try:
                self.flush()
            except Exception as exc:
                pending = self.buffered
                logger.error(
                    "writing %d transient messages to %s failed (%s: %s); retrying in %.1f s",
                    pending,
                    masked(self._store.engine.url),
                    type(exc).__name__,
                    exc,
                    _RETRY_DELAY_S,
                    extra={"action": "publish", "count": pending},
                )
                if self._stopped_within(_RETRY_DELAY_S):
                    return

    def _stopped_within(self, seconds: float) -> bool:
        """Wait ``seconds`` unless close() comes first (True): a plain sleep held close() up
        to its join's 5 s."""
        with self._condition:
            return self._condition.wait_for(lambda: self._stopping, timeout=seconds)

    def _write(self, rows: list[PendingRow]) -> None:
        if not rows:
            return
        self._store.messages.put_many(rows)
        self._on_written({row.queue for row in rows})


_writers: weakref.WeakSet[TransientWriter] = weakref.WeakSet()


def _reset_in_child() -> None:
    for writer in list(_writers):
        writer._reset_in_child()


after_fork_in_child(_reset_in_child)


@atexit.register
def _flush_at_exit() -> None:
    # A process that exits without closing its connection still writes what it buffered.
    for writer in list(_writers):
        try:
            writer.flush()
        except Exception:
            logger.exception("writing buffered transient messages at exit failed")
