"""The kombu transport ``linkmq``: durable queues in the application's SQL database.

Features
========
* Type: Virtual
* Supports Direct: Yes
* Supports Topic: Yes
* Supports Fanout: Yes (bindings live in the database: across processes)
* Supports Priority: Yes (0-9, higher first; FIFO within a priority)
* Supports TTL: Yes (per-message ``expiration``)
* At-least-once: Yes (leases; a dead consumer's messages come back within ``lease_s``)
* Transactional publish: Yes (``publish_on(connection)``)

Connection String
=================
``linkmq+<SQLAlchemy URL>``::

    linkmq+sqlite:///link_mq.sqlite3
    linkmq+postgresql+psycopg://app:secret@db/app

Transport Options
=================
``broker_transport_options`` (Celery) or ``transport_options`` (kombu): every option, its
default, unit and meaning is a field of ``link_message_queue.transport.options.TransportOptions``
(the documentation's configuration page is generated from it). Unknown options are refused.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

import sqlalchemy as sa
from amqp.exceptions import RecoverableConnectionError
from kombu.transport import virtual

from ..db import Database, after_fork_in_child, database_for, database_url, ensure_schema, masked
from .channel import Channel
from .doorbell import Doorbell, DoorbellListener, doorbell_directory
from .errors import SchemaMissingError
from .leases import LeaseKeeper
from .options import TransportOptions
from .qos import AckBuffer
from .store import MessageStore
from .transient import TransientWriter
from .wakeup import Backoff, ListenerHold, WakePipe, WakeSignal, listen_shared

logger = logging.getLogger(__name__)

_DEFAULT_POLL_CEILING_S = {"postgresql": 2.0}
_DEFAULT_POLL_CEILING_OTHER_S = 0.25

# One signal per database and process: a publish in this process wakes its consumers at once.
_signals: dict[str, WakeSignal] = {}
after_fork_in_child(_signals.clear)  # a forked child's consumers are its own


def _signal_key(url: str, prefix: str) -> str:
    return f"{prefix}|{url}"


def _signal_for(url: str, prefix: str) -> WakeSignal:
    return _signals.setdefault(_signal_key(url, prefix), WakeSignal())


class Transport(virtual.Transport):
    """The kombu transport ``linkmq+<SQLAlchemy URL>`` (a ``kombu.transport.virtual.Transport``):
    features, URL and options in the module docstring and ``transport.options``. Raises
    ``DriverMissingError`` when the URL's database driver is not installed, ``TransportOptionError``
    on an unknown option (or ``publish_synchronous_commit`` off PostgreSQL), and
    ``SchemaMissingError`` on connect when the tables are missing and ``auto_migrate`` is off."""

    Channel = Channel

    can_parse_url = True
    default_port = None
    # Not "sql": Celery switches events off for that driver type, and this transport carries
    # events, remote control and broadcast across processes.
    driver_type = "linkmq"
    driver_name = "linkmq"

    connection_errors: tuple[Any, ...] = (
        sa.exc.OperationalError,
        sa.exc.InterfaceError,
        sa.exc.DisconnectionError,
        sa.exc.TimeoutError,
        ConnectionError,
        OSError,
        # What kombu (maybe_declare) and this transport's channel raise on a closed channel.
        RecoverableConnectionError,
    )
    channel_errors: tuple[Any, ...] = (
        sa.exc.ProgrammingError,
        sa.exc.IntegrityError,
        SchemaMissingError,
    )

    implements = virtual.Transport.implements.extend(
        # Celery's worker runs its event loop (register_with_event_loop), as on Redis.
        asynchronous=True,
        exchange_type=frozenset(["direct", "topic", "fanout"]),
    )

    def __init__(self, client: Any, **kwargs: Any) -> None:
        self.options = TransportOptions.from_transport_options(client.transport_options or {})
        self.url = str(client.hostname)
        backend = database_url(self.url).get_backend_name()
        ceiling = self.options.polling_interval or _DEFAULT_POLL_CEILING_S.get(
            backend, _DEFAULT_POLL_CEILING_OTHER_S
        )
        self.backoff = Backoff(self.options.polling_interval_min_s, ceiling)
        self._setup_process_state()
        super().__init__(client, **kwargs)

    def _setup_process_state(self) -> None:
        self.database: Database = database_for(self.url, self.options)
        engine = self.database.engine
        # Claims and publishes run on the process's shared held connections: close_connection
        # lets go of them.
        self.store = MessageStore(
            engine,
            self.database.tables,
            hold_connections=True,
            publish_synchronous_commit=self.options.publish_synchronous_commit,
        )
        self.signal = _signal_for(self.url, self.options.table_prefix)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.leases = LeaseKeeper(
            self.store,
            owner,
            lease_s=self.options.lease_s,
            renew_interval_s=self.options.renew_interval_s,
            cleanup_interval_s=self.options.cleanup_interval_s,
            active_queues=self._active_queues,
        )
        self._listener: ListenerHold | DoorbellListener | None = None
        # SQLite: other processes' consumers are rung after each publish (see doorbell).
        directory = (
            doorbell_directory(str(engine.url.database), self.options.table_prefix)
            if self.store.dialect == "sqlite"
            else None
        )
        self._doorbell_directory = directory
        self.doorbell = (
            None
            if directory is None
            else Doorbell(directory, min_interval_s=self.options.polling_interval_min_s)
        )
        self.acks = AckBuffer()
        self.transient = TransientWriter(
            self.store,
            on_written=self._wake_consumers_of,
            flush_interval_s=self.options.transient_flush_s,
            max_buffered=self.options.transient_buffer_max,
        )
        self.draining = False
        self._channel_rotation = itertools.count()
        self._loop: Any = None  # the kombu hub running the rounds, if any
        self._wake_pipe: WakePipe | None = None
        self._loop_thread: int | None = None
        self._round_timer: Any = None
        self._idle_since_generation: int | None = None
        self._next_poll_at = 0.0
        self._next_full_round_at = 0.0

    def _active_queues(self) -> list[str]:
        return sorted(
            {queue for channel in list(self.channels) for queue in channel._active_queues}
        )

    def _wake_consumers_of(self, queues: set[str]) -> None:
        for queue in queues:
            self.wake_consumers_of(queue)

    def wake_consumers_of(self, queue: str) -> None:
        """After a publish to ``queue`` committed: wake its consumers in this process and, on
        SQLite, ring the other processes (PostgreSQL's NOTIFY came with the INSERT)."""
        self.signal.notify_for(queue)
        if self.doorbell is not None:
            self.doorbell.ring(queue)

    def flush_acks(self) -> None:
        """Delete acked messages that no claim has carried yet."""
        acked = self.acks.take()
        if not acked:
            return
        try:
            self.store.messages.ack(acked)
        except BaseException:
            self.acks.give_back(acked)
            raise
        self.leases.forget(acked)

    # -- connection ------------------------------------------------------------------------

    def establish_connection(self) -> Any:
        """kombu ``Transport.establish_connection``: first checks the schema (migrating it when
        ``auto_migrate`` is on, else raising ``SchemaMissingError``)."""
        self._check_pid()
        ensure_schema(self.store.engine, self.options.table_prefix, self.options.auto_migrate)
        return super().establish_connection()

    def close_connection(self, connection: Any) -> None:
        """kombu ``Transport.close_connection``: writes buffered transient messages and acks, then
        stops the lease keeper and lets go of the wake-up listener and held connections."""
        with contextlib.ExitStack() as cleanup:
            # Every step runs even when one before it raised (a connection lost meanwhile):
            # the first error propagates, the later ones chained to it. Last pushed runs first.
            if self.doorbell is not None:
                cleanup.callback(self.doorbell.close)
            cleanup.callback(self._stop_listener)
            cleanup.callback(self.store.close)
            cleanup.callback(self.leases.stop)
            self._leave_event_loop()
            self.transient.close()
            self.flush_acks()
            super().close_connection(connection)

    def _stop_listener(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            listener.stop()

    def as_uri(self, uri: str, include_password: bool = False, mask: str = "**") -> str:
        """kombu ``Transport.as_uri``: ``linkmq+<url>``, with the password masked unless
        ``include_password``."""
        if include_password:
            return f"linkmq+{uri}"
        return f"linkmq+{masked(uri)}"

    def driver_version(self) -> str:
        """kombu ``Transport.driver_version``: the SQLAlchemy version."""
        return str(sa.__version__)

    # -- consuming -------------------------------------------------------------------------

    def drain_events(self, connection: Any, timeout: float | None = None, **_: Any) -> None:
        """Deliver what is ready, or wait for a wake-up (NOTIFY, a local publish or ack) or the
        next poll; raise ``socket.timeout`` when ``timeout`` passes with nothing delivered.

        Polls happen at most once per back-off interval however often Celery calls in, so an
        idle worker costs one claim per queue every ``polling_interval`` seconds."""
        self._check_pid()
        self._listen_once()
        self.draining = True
        try:
            self._drain(None if timeout is None else time.monotonic() + timeout)
        finally:
            self.draining = False

    def _drain(self, deadline: float | None) -> None:
        while True:
            seen = self.signal.generation
            if self._round(seen):
                return
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError  # socket.timeout, which kombu and Celery expect
            wake_at = self._next_poll_at if deadline is None else min(self._next_poll_at, deadline)
            self.signal.wait(seen, max(0.0, wake_at - now))

    def _round(self, seen: int) -> bool:
        """Claim and deliver if woken since the last empty round (``seen`` is the signal's
        generation read before) or a poll is due; whether anything was delivered."""
        now = time.monotonic()
        polled = now >= self._next_poll_at
        if seen == self._idle_since_generation and not polled:
            return False
        # A wake-up claims only the queues that may have changed; a poll (and at least one
        # round every poll ceiling, however busy) claims every queue.
        everything = polled or now >= self._next_full_round_at
        if everything:
            self._next_full_round_at = now + self.backoff.maximum_s
        if self._deliver_ready(everything):
            self.backoff.reset()
            self._idle_since_generation = None
            # The next poll is one back-off step after this delivery: until then, wake-ups
            # claim only queues that may have changed, not every queue.
            self._next_poll_at = time.monotonic() + self.backoff.next_s()
            return True
        self.flush_acks()
        self._idle_since_generation = seen
        self._next_poll_at = time.monotonic() + self.backoff.next_s()
        return False

    def _deliver_ready(self, everything: bool) -> int:
        # Each round starts at the next channel: a busy task channel must not keep the
        # remote-control channel (Celery's pidbox) waiting behind it.
        channels = list(self.channels)
        if not channels:
            return 0
        start = next(self._channel_rotation) % len(channels)
        for channel in channels[start:] + channels[:start]:
            delivered: int = channel.deliver_ready(everything)
            if delivered:
                return delivered
        return 0

    # -- event loop (Celery's worker) ------------------------------------------------------

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        """Let ``loop`` (a kombu hub) run the rounds: it watches a pipe that every wake-up
        rings, and a timer for the next poll. Celery's worker then runs its asynchronous loop,
        as on Redis: remote control is served between deliveries, and prefetched tasks wait in
        the worker (revocable, handed back on shutdown) until a pool process is free."""
        self._check_pid()
        self._listen_once()
        if self._wake_pipe is None:
            self._wake_pipe = WakePipe()
            self.signal.watch(self._wake_pipe)
        self._loop = loop
        self._loop_thread = threading.get_ident()
        loop.add_reader(self._wake_pipe.fileno(), self._on_wake)
        loop.call_soon(self._on_wake)

    def _on_wake(self) -> None:
        loop, pipe = self._loop, self._wake_pipe
        if loop is None or pipe is None:
            return  # closed; a timer or ring that was already on its way
        if threading.get_ident() != self._loop_thread:
            # Celery fires the loop's timers from a thread of its own while a stopping worker
            # waits for its pool: a round there would race the loop's thread and hand tasks to
            # a closing pool. A stopping worker takes nothing more.
            return
        pipe.clear()
        if self._round(self.signal.generation):
            # More may be ready: claim again once the loop has served everything else.
            self._schedule_round(loop, 0.0)
        else:
            self._schedule_round(loop, max(0.0, self._next_poll_at - time.monotonic()))

    def _schedule_round(self, loop: Any, delay_s: float) -> None:
        if self._round_timer is not None:
            self._round_timer.cancel()
        self._round_timer = loop.call_later(delay_s, self._on_wake)

    def _leave_event_loop(self) -> None:
        loop, pipe = self._loop, self._wake_pipe
        self._loop, self._wake_pipe = None, None
        if self._round_timer is not None:
            self._round_timer.cancel()
            self._round_timer = None
        if pipe is not None:
            self.signal.unwatch(pipe)
            if loop is not None:
                loop.remove(pipe.fileno())
            pipe.close()

    @property
    def acks_ride_along(self) -> bool:
        """Whether an ack can wait for the next round's claim: a consumer is draining, or an
        event loop runs the rounds (an ack rings it); otherwise an ack deletes at once."""
        return self.draining or self._loop is not None

    def _listen_once(self) -> None:
        if self._listener is not None:
            return
        if self._doorbell_directory is not None:
            listener = DoorbellListener(self._doorbell_directory, self.signal)
            if listener.start():
                self._listener = listener
            else:
                self._doorbell_directory = None  # warned once; polling from now on
            return
        if self.store.dialect != "postgresql":
            return
        if self.store.engine.dialect.driver != "psycopg":
            return  # LISTEN needs psycopg 3; other drivers poll
        # One LISTEN connection per process and database: its wake-ups reach every transport
        # through the shared signal.
        self._listener = listen_shared(
            _signal_key(self.url, self.options.table_prefix),
            self.store.engine,
            self.store.tables.notify_channel,
            self.signal,
        )

    def _check_pid(self) -> None:
        # A transport used in a forked child gets its own engine, leases and listener.
        if self.database.forked:
            self._setup_process_state()
            for channel in self.channels:
                channel.store, channel.leases = self.store, self.leases
