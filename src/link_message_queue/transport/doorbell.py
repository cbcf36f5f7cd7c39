"""SQLite's cross-process wake-up (PostgreSQL has LISTEN/NOTIFY): a publisher rings every
consuming process of the same database file with the queue's name, one datagram each on a Unix
socket; the consumer's listener thread turns it into a wake-up for that queue.

The sockets live in a directory of their own per database file and user (``linkmq-<uid>-<hash>``
in the temporary directory, mode 0700; SQLite is a local file, so every process using it is on
this machine). A ring is a hint only: a consumer still polls, so a lost datagram (a full socket
buffer, a listener not yet listed) costs at most the poll interval. A publisher lists the
sockets again whenever the directory's modification time moves, so a consumer that starts
listening is rung from the next publish on. Rings of one queue are spaced at least
``min_interval_s`` apart: a consumer that was rung polls again within that time after a
delivery anyway, and a busy publisher must not wake every consumer per message.
Where Unix datagram sockets are missing (Windows), consumers only poll.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .wakeup import WakeSignal

logger = logging.getLogger(__name__)

# How long the listener blocks in one wait; bounds how fast it stops.
_RECEIVE_WAIT_S = 0.5
# A publisher lists the listening sockets again when the directory changes (a consumer came or
# went); this bounds how long it trusts a listing whose change the directory's time missed.
_LISTING_TTL_S = 1.0
_MAX_QUEUE_NAME_BYTES = 1024
# Rung queues remembered for spacing; past this many (reply queues are one per client) the
# ones rung longer ago than the spacing are forgotten.
_RUNG_QUEUES_KEPT = 1000


def doorbell_directory(database_path: str, prefix: str) -> Path | None:
    """The directory of the listening sockets for one SQLite file and table prefix; None where
    there are no Unix datagram sockets."""
    if not hasattr(socket, "AF_UNIX"):
        return None
    key = hashlib.sha256(f"{prefix}|{os.path.realpath(database_path)}".encode()).hexdigest()[:16]
    # Short on purpose: a socket path must fit in about 100 bytes.
    return Path(tempfile.gettempdir()) / f"linkmq-{os.getuid()}-{key}"


class DoorbellListener:
    """A thread of a consuming process: binds a socket in the directory and wakes ``signal``
    for every queue name it receives."""

    def __init__(self, directory: Path, signal: WakeSignal) -> None:
        self._directory = directory
        self._signal = signal
        self._stopping = threading.Event()
        self._socket: socket.socket | None = None
        self.path = directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._thread = threading.Thread(target=self._run, name="linkmq-doorbell", daemon=True)

    def start(self) -> bool:
        """Listen; False (and a warning) when the socket cannot be bound: consumers then poll."""
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._bind(listening)
        except OSError as exc:
            listening.close()
            logger.warning(
                "cannot listen for wake-ups in %s (%s: %s); consumers poll instead",
                self._directory,
                type(exc).__name__,
                exc,
                extra={"action": "listen"},
            )
            return False
        listening.settimeout(_RECEIVE_WAIT_S)
        self._socket = listening
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop the thread (waiting a few receive intervals), close and unlink the socket, and
        remove the directory if it is the last listener's; an unexpected error removing it is logged
        as a warning."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._wake_receiver()
            self._thread.join(timeout=_RECEIVE_WAIT_S * 4)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self.path.unlink(missing_ok=True)
        try:
            self._directory.rmdir()  # the last listener of this database leaves nothing
        except OSError as exc:
            # Other listeners are still there, or another one removed it: expected.
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                logger.warning(
                    "cannot remove %s (%s)", self._directory, exc, extra={"action": "listen"}
                )

    def _wake_receiver(self) -> None:
        # An empty datagram ends the listener's wait at once rather than after its time-out
        # (a stopping worker waited for it).
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as waker:
            try:
                waker.sendto(b"", str(self.path))
            except OSError as exc:
                logger.debug(
                    "cannot wake the listener at %s (%s); it stops within %.1f s",
                    self.path,
                    exc,
                    _RECEIVE_WAIT_S,
                    extra={"action": "listen"},
                )

    def _bind(self, listening: socket.socket) -> None:
        for attempt in range(3):
            self._directory.mkdir(mode=0o700, exist_ok=True)
            try:
                listening.bind(str(self.path))
                return
            except FileNotFoundError:
                # The last listener removed the directory between our mkdir and bind.
                if attempt == 2:
                    raise

    def _run(self) -> None:
        assert self._socket is not None
        # Anything published before this socket was listed is found by this wake-up.
        self._signal.notify_everything()
        while not self._stopping.is_set():
            try:
                datagram = self._socket.recv(_MAX_QUEUE_NAME_BYTES)
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    return
                logger.error(
                    "receiving wake-ups on %s failed (%s: %s); consumers poll instead",
                    self.path,
                    type(exc).__name__,
                    exc,
                    extra={"action": "listen"},
                )
                return
            if not datagram:
                continue  # the wake-up of stop()
            self._signal.notify_for(datagram.decode("utf-8", "replace"))


class Doorbell:
    """The publishing side: ``ring(queue)`` after a commit tells every other process listening
    in the directory that ``queue`` has something new (this process's consumers are woken by
    its in-process signal)."""

    def __init__(self, directory: Path, min_interval_s: float) -> None:
        self._directory = directory
        self._min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._listeners: list[str] = []
        self._listed_at = float("-inf")
        self._listed_version: int | None = None
        self._rung_at: dict[str, float] = {}

    def ring(self, queue: str) -> None:
        """Tell every listening process that ``queue`` has a new message: one datagram per listener,
        at most once per ``min_interval_s`` seconds per queue. Unreachable listeners are dropped
        from the list, not raised."""
        now = time.monotonic()
        with self._lock:
            if now - self._rung_at.get(queue, float("-inf")) < self._min_interval_s:
                return
            if len(self._rung_at) >= _RUNG_QUEUES_KEPT:
                horizon = now - self._min_interval_s
                self._rung_at = {q: at for q, at in self._rung_at.items() if at > horizon}
            self._rung_at[queue] = now
            version = self._directory_version()
            if version != self._listed_version or now - self._listed_at > _LISTING_TTL_S:
                # Read the version before listing: a change while listing is seen next time.
                self._listeners = self._list()
                self._listed_at = now
                self._listed_version = version
            if not self._listeners:
                return
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
            name = queue.encode("utf-8")
            for path in list(self._listeners):
                try:
                    self._socket.sendto(name, path)
                except OSError as exc:
                    self._unreachable(path, exc)

    def close(self) -> None:
        """Close the sending socket; a later ``ring`` opens a new one."""
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def _directory_version(self) -> int | None:
        # One stat(): a socket bound or removed in the directory changes its modification time.
        try:
            return os.stat(self._directory).st_mtime_ns
        except OSError:
            return None  # missing (nobody listened yet) or unusable: _list() says which

    def _list(self) -> list[str]:
        own = f"{os.getpid()}-"
        try:
            return [
                str(path) for path in self._directory.iterdir() if not path.name.startswith(own)
            ]
        except FileNotFoundError:
            return []  # no consumer has listened on this database yet
        except OSError as exc:
            # The publish has committed: it must not fail for a hint; consumers poll instead.
            logger.warning(
                "cannot list the consumers to wake in %s (%s: %s); they poll instead",
                self._directory,
                type(exc).__name__,
                exc,
                extra={"action": "listen"},
            )
            return []

    def _unreachable(self, path: str, exc: OSError) -> None:
        if exc.errno in (errno.EAGAIN, errno.ENOBUFS):
            return  # its buffer is full of rings it has not read: it is awake already
        self._listeners.remove(path)
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            # Nobody reads this socket any more: a killed process left it behind.
            Path(path).unlink(missing_ok=True)
            logger.debug("removed the stale wake-up socket %s", path, extra={"action": "listen"})
            return
        logger.warning(
            "cannot wake the consumer at %s (%s: %s); it polls instead",
            path,
            type(exc).__name__,
            exc,
            extra={"action": "listen"},
        )
