"""Lease keeping: a live consumer renews the leases of the messages (and the named locks) it
holds, so a long task is never redelivered while its worker lives; and it deletes messages
whose time-to-live ran out. One keeper per consumer: the channel's (kombu, worker mode) and a
direct consumer's (``delivery.Deliveries``, tick mode) are both this class."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from ..db.locks import Locks
from .store import MessageStore

logger = logging.getLogger(__name__)

TOUCH_INTERVAL_S = 2.0
# A consumer that has not said it is alive for this long is gone (killed): forget it.
CONSUMER_GONE_AFTER_S = 30 * TOUCH_INTERVAL_S


class LeaseKeeper:
    """A daemon thread that, every ``renew_interval_s`` seconds (at most ``TOUCH_INTERVAL_S``),
    renews the leases (``lease_s`` seconds) of the message ids and named locks consumer ``owner``
    holds and lists the owner as a live consumer of ``active_queues()`` (which keeps those queues
    from expiring); every ``cleanup_interval_s`` seconds (never if None) it also deletes expired
    messages and unused queues. Database errors in the thread are logged and retried on the next
    round; they never stop it."""

    def __init__(
        self,
        store: MessageStore,
        owner: str,
        *,
        lease_s: float,
        renew_interval_s: float,
        cleanup_interval_s: float | None,
        active_queues: Callable[[], list[str]] = list,
    ) -> None:
        self.store = store
        self.locks = Locks(store.engine, store.tables.lock)
        self.owner = owner
        self.lease_s = lease_s
        self._renew_interval_s = renew_interval_s
        self._cleanup_interval_s = cleanup_interval_s
        self._active_queues = active_queues
        # Held message id -> time.monotonic() taken just before the statement that last set
        # its lease: the lease lasts at least until then + lease_s.
        self._held: dict[int, float] = {}
        self._locks: set[str] = set()  # named locks (``db.locks.Locks``) held
        # Renewing a lock and releasing it exclude each other: a renewal after the release
        # would take the free lock again. Never held by a thread inside a transaction.
        self._locks_renewal = threading.Lock()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._listed = False  # whether the live-consumer list has this owner

    def hold(self, ids: Iterable[int], leased_at: float) -> None:
        """Renew these messages' leases from now on. ``leased_at``: ``time.monotonic()`` taken
        before the claim that leased them."""
        with self._lock:
            self._held.update(dict.fromkeys(ids, leased_at))
        self.start()

    def forget(self, ids: Iterable[int]) -> None:
        """Stop renewing the leases of ``ids`` (acked, rejected or requeued); unknown ids are
        ignored."""
        with self._lock:
            for message_id in ids:
                self._held.pop(message_id, None)

    @contextmanager
    def locked(self, name: str) -> Iterator[bool]:
        """Take the named lock (``db.locks.Locks``) for ``lease_s`` seconds and yield
        whether it was taken; while the block runs the lock is renewed with the leases, and it is
        released when the block ends. False (nothing held) when another owner holds it."""
        if not self.locks.try_lock(name, self.owner, self.lease_s):
            yield False
            return
        with self._locks_renewal:
            self._locks.add(name)
        self.start()
        try:
            yield True
        finally:
            with self._locks_renewal:
                self._locks.discard(name)
                self.locks.unlock(name, self.owner)

    def held(self) -> list[int]:
        """The ids of the messages whose leases this keeper renews, ascending."""
        with self._lock:
            return sorted(self._held)

    def stop(self) -> None:
        """Stop the renewal thread (waiting up to 5 s for it) and remove the owner from the
        live-consumer list; a failure to remove it is logged as a warning, not raised (the cleaner
        forgets a consumer no longer seen)."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=5)
        if thread is not None:
            try:
                self.store.consumers.forget_consumer(self.owner)
            except Exception as exc:
                # Not fatal: the cleaner forgets a consumer that is no longer seen.
                logger.warning(
                    "could not remove consumer %s from the live list: %s: %s",
                    self.owner,
                    type(exc).__name__,
                    exc,
                    extra={"action": "consumer_stop"},
                )

    def renew_now(self) -> int:
        """Extend the held leases (and the named locks ``locked`` holds); returns how many message
        leases were extended. A held message whose row is no longer ours was acked, released or
        deleted (its time-to-live ran out) meanwhile: it is forgotten, and a warning is logged
        only if its lease may have run out first."""
        self._renew_locks()
        with self._lock:
            held = dict(self._held)
        if not held:
            return 0
        renewing_at = time.monotonic()
        renewed = self.store.messages.renew(held, self.owner, self.lease_s)
        renewed_at = time.monotonic()
        gone = set(held) - renewed
        with self._lock:
            for message_id in renewed:
                if message_id in self._held:
                    self._held[message_id] = max(self._held[message_id], renewing_at)
            for message_id in gone:
                # Unless it was claimed again since we read it.
                if self._held.get(message_id) == held[message_id]:
                    del self._held[message_id]
        # While our lease lasted no other consumer could claim the row (clocks agreeing): it
        # left by our own ack or release, or by the cleaner (expired), and runs nowhere else.
        # Once the lease ran out (a stall longer than the lease), another consumer may have
        # claimed it.
        lost = sorted(i for i in gone if renewed_at - held[i] >= self.lease_s)
        if lost:
            logger.warning(
                "%d of %d leases were lost before renewal (not renewed for %.1f s, lease %.1f "
                "s), and another consumer may have claimed them: those messages may run twice",
                len(lost),
                len(held),
                renewed_at - min(held[i] for i in lost),
                self.lease_s,
                extra={"action": "lease_lost", "message_ids": lost},
            )
        if len(gone) > len(lost):
            logger.debug(
                "%d held messages were acked, released or expired before their renewal",
                len(gone) - len(lost),
                extra={"action": "renew"},
            )
        return len(renewed)

    def _renew_locks(self) -> None:
        with self._locks_renewal:
            for name in sorted(self._locks):
                if not self.locks.try_lock(name, self.owner, self.lease_s):
                    logger.warning(
                        "lock %s ran out before its renewal and another owner holds it now",
                        name,
                        extra={"action": "lock_lost", "lock": name},
                    )

    def clean(self) -> None:
        """Drop expired messages and unused queues (one bounded batch each)."""
        cleanup = self.store.cleaner.clean(CONSUMER_GONE_AFTER_S)
        deleted, dropped = cleanup.expired_messages, cleanup.expired_queues
        if deleted:
            logger.info("deleted %d expired messages", deleted, extra={"action": "expire"})
        if dropped:
            logger.info(
                "deleted %d unused queues: %s",
                len(dropped),
                ", ".join(dropped[:10]),
                extra={"action": "expire_queue", "queues": dropped},
            )

    def start(self) -> None:
        """Start the keeper thread (once): consumers start it so their queues stay alive."""
        if self._thread is not None or self._stopping.is_set():
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="linkmq-leases", daemon=True)
                self._thread.start()

    def _say_alive(self) -> None:
        """List this owner as a live consumer with its queues (which keeps them from expiring)
        while it consumes or holds messages. A connection that stopped consuming and stays
        open in a pool (e.g. a client that collected replies on a reply queue) is no consumer:
        it leaves the list."""
        queues = self._active_queues()
        if queues or self.held():
            self.store.consumers.heartbeat(self.owner, queues)
            self._listed = True
        elif self._listed:
            self.store.consumers.forget_consumer(self.owner)
            self._listed = False

    def _run(self) -> None:
        next_cleanup = time.monotonic()
        # Queues in use are touched at least every TOUCH_INTERVAL_S, well inside the shortest
        # x-expires Celery asks for (10 s for its reply and control queues).
        period_s = min(self._renew_interval_s, TOUCH_INTERVAL_S)
        while not self._stopping.wait(period_s):
            # Each step on its own: a renewal that fails (the database down, a statement it
            # refuses) must not stop the heartbeat that keeps the queues alive, nor the cleaner.
            self._step("lease renewal", "renew", self.renew_now)
            self._step("consumer heartbeat", "heartbeat", self._say_alive)
            if self._cleanup_interval_s is not None and time.monotonic() >= next_cleanup:
                next_cleanup = time.monotonic() + self._cleanup_interval_s
                self._step("cleanup", "expire", self.clean)

    @staticmethod
    def _step(what: str, action: str, step: Callable[[], object]) -> None:
        """Run one step of a round; an exception is logged as an error (``what`` failed) and
        the step is tried again next round: the leases last ``lease_s``, three rounds by
        default."""
        try:
            step()
        except Exception as exc:
            logger.error(
                "%s failed: %s: %s",
                what,
                type(exc).__name__,
                exc,
                extra={"action": action},
            )
