"""Waking a waiting consumer: an in-process signal, fed by PostgreSQL LISTEN/NOTIFY where the
database has it (one listener per process and database, ``listen_shared``), and an adaptive
poll everywhere (tight while busy, backing off when idle).

A consumer waits on the signal in ``drain_events``, or, run by an event loop (Celery's worker),
watches a pipe that the signal writes a byte to on every wake-up (see ``WakePipe``)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import Counter
from typing import Any

import sqlalchemy as sa

from ..db import after_fork_in_child, masked

logger = logging.getLogger(__name__)

# How long the listener blocks in one wait for notifications; bounds how fast it stops.
_LISTEN_WAIT_S = 0.5
_RECONNECT_DELAY_S = 1.0


class WakeSignal:
    """A generation counter: waiters sleep until it moves past the value they last saw.

    Each queue also has a stamp that moves when something is published to it (seen here or
    through NOTIFY), so a consumer can skip a queue it found empty until its stamp moves."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0
        # Queues consumed in this process: a publish to any other queue (an event for Flower,
        # a reply to a client) wakes no one here.
        self.consumed: Counter[str] = Counter()
        self._queue_stamps: Counter[str] = Counter()
        self._epoch = 0  # moves when any queue may have changed unseen (a LISTEN reconnect)
        self._pipes: list[WakePipe] = []  # event loops watching this signal

    def notify_for(self, queue: str) -> None:
        """Move ``queue``'s stamp and wake the waiters, if a consumer in this process consumes
        ``queue``."""
        if self.consumed[queue] > 0:
            with self._condition:
                self._queue_stamps[queue] += 1
            self.notify()

    def notify_everything(self) -> None:
        """Every queue may hold something new (notifications may have been missed)."""
        with self._condition:
            self._epoch += 1
        self.notify()

    def stamp(self, queue: str) -> tuple[int, int]:
        """``queue``'s stamp and the signal's epoch: a consumer that found the queue empty skips it
        until this pair changes."""
        with self._condition:
            return self._queue_stamps[queue], self._epoch

    @property
    def generation(self) -> int:
        """The current generation: a waiter sleeps until it moves past this value."""
        return self._generation

    def notify(self) -> None:
        """Move the generation and wake every waiter."""
        with self._condition:
            self._generation += 1
            self._condition.notify_all()
            pipes = list(self._pipes)
        for pipe in pipes:
            pipe.ring()

    def watch(self, pipe: WakePipe) -> None:
        """Ring ``pipe`` on every wake-up from now on."""
        with self._condition:
            self._pipes.append(pipe)

    def unwatch(self, pipe: WakePipe) -> None:
        """Stop ringing ``pipe`` (its event loop is going away); unknown pipes are ignored."""
        with self._condition:
            if pipe in self._pipes:
                self._pipes.remove(pipe)

    def wait(self, seen: int, timeout_s: float) -> bool:
        """True when woken by a signal after ``seen``, False on time-out."""
        with self._condition:
            return self._condition.wait_for(lambda: self._generation != seen, timeout_s)


class WakePipe:
    """A pipe whose read end an event loop watches: readable after ``ring()`` until ``clear()``.
    Both ends are non-blocking; a full pipe is readable already, so a ring is never lost."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        # Rings come from any thread; the lock keeps one from writing to a closed (and perhaps
        # reused) descriptor.
        self._lock = threading.Lock()
        self._closed = False

    def fileno(self) -> int:
        """The read end's descriptor, for the event loop to watch for readability."""
        return self._read_fd

    def ring(self) -> None:
        """Make the read end readable (from any thread); a no-op once closed."""
        with self._lock:
            if self._closed:
                return
            # A full pipe: the loop has wake-ups to read already.
            with contextlib.suppress(BlockingIOError):
                os.write(self._write_fd, b"\0")

    def clear(self) -> None:
        """Read every pending ring (before a round, so a ring during it is seen next time)."""
        with contextlib.suppress(BlockingIOError):  # nothing (more) to read
            while os.read(self._read_fd, 4096):
                pass

    def close(self) -> None:
        """Close both ends (once; later rings are no-ops)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._read_fd)
                os.close(self._write_fd)


class Backoff:
    """The idle poll interval: ``minimum_s`` after a delivery, doubling up to ``maximum_s``."""

    def __init__(self, minimum_s: float, maximum_s: float) -> None:
        self.minimum_s = minimum_s
        self.maximum_s = max(minimum_s, maximum_s)
        self._current_s = 0.0

    def reset(self) -> None:
        """Start over: the next ``next_s`` is ``minimum_s`` (after a delivery)."""
        self._current_s = 0.0

    def next_s(self) -> float:
        """The next idle wait (seconds): double the last, within ``minimum_s``..``maximum_s``."""
        self._current_s = min(self.maximum_s, max(self.minimum_s, self._current_s * 2))
        return self._current_s


class PostgresListener:
    """A thread that LISTENs on the transport's channel and turns each NOTIFY into a wake-up.

    It holds one connection of its own (outside the pool) with psycopg 3. When the connection
    drops it logs, reconnects and wakes the consumer once, so nothing published meanwhile waits
    for the slow poll."""

    def __init__(self, engine: sa.Engine, channel: str, signal: WakeSignal) -> None:
        self._engine = engine
        self._channel = channel
        self._signal = signal
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="linkmq-listen", daemon=True)

    def start(self) -> None:
        """Start the listening thread (a daemon)."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop and wait a few listen intervals for it; its connection closes with
        it."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=_LISTEN_WAIT_S * 4)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except Exception as exc:
                logger.warning(
                    "LISTEN on %s failed (%s: %s); reconnecting in %.1f s",
                    masked(self._engine.url),
                    type(exc).__name__,
                    exc,
                    _RECONNECT_DELAY_S,
                    extra={"action": "listen"},
                )
                self._signal.notify_everything()
                self._stopping.wait(_RECONNECT_DELAY_S)

    def _listen(self) -> None:
        raw: Any = self._engine.raw_connection()
        try:
            connection = raw.driver_connection
            connection.autocommit = True
            connection.execute(f'LISTEN "{self._channel}"')
            # Anything published before LISTEN is found by this wake-up.
            self._signal.notify_everything()
            while not self._stopping.is_set():
                for notification in connection.notifies(timeout=_LISTEN_WAIT_S, stop_after=1):
                    self._signal.notify_for(notification.payload)
        finally:
            raw.invalidate()  # never return a LISTENing connection to the pool


class ListenerHold:
    """One transport's share of the process's ``PostgresListener`` for a database (from
    ``listen_shared``); ``stop()`` lets go of it (once), and the last share stops the listener."""

    def __init__(self, key: str, listener: PostgresListener) -> None:
        self._key = key
        self._listener: PostgresListener | None = listener

    def stop(self) -> None:
        """Let go of the share; the last one stops the listener (waits for its thread, see
        ``PostgresListener.stop``). A share of a parent's listener, in a forked child, is
        dropped without touching anything."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        with _listeners_lock:
            entry = _listeners.get(self._key)
            if entry is None or entry[0] is not listener:
                return
            if entry[1] > 1:
                _listeners[self._key] = (listener, entry[1] - 1)
                return
            del _listeners[self._key]
        listener.stop()  # outside the lock: it waits for the thread


# One listener per process and key (the signal's: prefix and URL), with how many transports
# share it: a LISTEN connection per kombu connection ran the engine's pool dry with a few kombu
# connections in one process. Its wake-ups reach every consumer through the shared signal.
_listeners: dict[str, tuple[PostgresListener, int]] = {}
_listeners_lock = threading.Lock()


def listen_shared(key: str, engine: sa.Engine, channel: str, signal: WakeSignal) -> ListenerHold:
    """A share of this process's listener under ``key``: the first share starts a
    ``PostgresListener`` on ``engine`` for ``channel`` (a NOTIFY channel name) feeding
    ``signal``; later shares under the same key reuse it (``key`` must name one database,
    prefix and signal). Pair each call with one ``ListenerHold.stop()``."""
    with _listeners_lock:
        entry = _listeners.get(key)
        if entry is None:
            listener = PostgresListener(engine, channel, signal)
            listener.start()
            _listeners[key] = (listener, 1)
        else:
            listener = entry[0]
            _listeners[key] = (listener, entry[1] + 1)
    return ListenerHold(key, listener)


def _forget_listeners_in_child() -> None:
    global _listeners_lock  # noqa: PLW0603 - a parent's thread may have held it at the fork
    _listeners_lock = threading.Lock()
    # The parent's listening threads do not run here; their connections are the parent's.
    _listeners.clear()


after_fork_in_child(_forget_listeners_in_child)
