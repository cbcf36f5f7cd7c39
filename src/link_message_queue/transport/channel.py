"""The kombu channel of the linkmq transport."""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import time
from queue import Empty
from typing import TYPE_CHECKING, Any

from amqp.exceptions import RecoverableConnectionError
from kombu.transport import virtual
from kombu.transport.base import to_rabbitmq_queue_arguments

from . import envelope
from .after_commit import wake_after_commit
from .errors import NameTooLongError, PublishRefusedError, TransportError
from .qos import LeaseQoS
from .rows import ClaimedRow, PendingRow
from .transactional import bound_batch, bound_connection, flush_pending

if TYPE_CHECKING:
    import sqlalchemy as sa

    from .leases import LeaseKeeper
    from .store import MessageStore
    from .transport import Transport

logger = logging.getLogger(__name__)

# AMQP's delivery_mode for messages a broker may lose (kombu's "transient").
_TRANSIENT = 1


def _database_identity(url: sa.URL) -> tuple[object, ...]:
    """What names one database: a SQLite file by its real path (``sqlite:///app.db`` from its
    folder and ``sqlite:////srv/app.db`` are one file), others by server and name."""
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return ("sqlite", os.path.realpath(str(url.database)))
    return (url.get_backend_name(), url.host, url.port, url.database)


def _topic_match(pattern: str, routing_key: str) -> bool:
    compiled = _TOPIC_PATTERNS.get(pattern)
    if compiled is None:
        compiled = _TOPIC_PATTERNS[pattern] = re.compile(pattern)
    return compiled.match(routing_key) is not None


_TOPIC_PATTERNS: dict[str, re.Pattern[str]] = {}


class Channel(virtual.Channel):
    """A kombu virtual channel (``kombu.transport.virtual.Channel``) over the ``MessageStore``:
    kombu's ``_put``/``_get``/``_size``/``_purge``/``_new_queue``/``_delete`` contract in SQL.
    Deliveries are leased for ``lease_s`` seconds (see ``LeaseQoS``); bindings live in the database
    so fanout reaches other processes; text bodies are stored as UTF-8 text, binary ones as base64.
    """

    QoS = LeaseQoS
    supports_fanout = True
    # Text bodies are stored as text (readable rows); binary ones as base64.
    body_encoding = "utf-8"

    connection: Transport

    def __init__(self, connection: Transport, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        self.store: MessageStore = connection.store
        self.leases: LeaseKeeper = connection.leases
        self._declared: set[str] = set()
        self._queue_rotation = itertools.count()
        self._message_ttl_s: dict[str, float | None] = {}
        self._no_ack_queues: set[str] = set()
        # Queues a claim found drained, with their wake-up stamp at that time.
        self._drained: dict[str, tuple[int, int]] = {}
        # Publishing: the caller's connection last found to be in the broker's database.
        self._checked_connection: sa.Connection | None = None

    # -- publishing ------------------------------------------------------------------------

    def _inplace_augment_message(
        self, message: dict[str, Any], exchange: str, routing_key: str
    ) -> None:
        message["body"], body_encoding = envelope.encode_body(
            message["body"], message.get("content-encoding")
        )
        properties = message["properties"]
        # No delivery tag here: a delivery gets "<row id>.<delivery count>" (see _to_message).
        properties["body_encoding"] = body_encoding
        properties["delivery_info"].update(exchange=exchange, routing_key=routing_key)

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        payload = envelope.encode(message)
        limit = self.connection.options.max_message_bytes
        if len(payload) > limit:
            raise PublishRefusedError(
                f"message for queue {queue!r} is {len(payload)} bytes, over the limit of {limit} "
                "(transport option max_message_bytes)"
            )
        properties = message["properties"]
        row = PendingRow(
            queue, payload, self._get_message_priority(message), self._ttl_s(queue, properties)
        )
        batch = bound_batch()
        if batch is not None:
            # Inside publish_on(): buffered, written into the caller's transaction with the
            # block's other messages (see transactional).
            self._check_same_database(batch.connection)
            batch.add(self._write_in_transaction, row)
            return
        if (
            properties.get("delivery_mode") == _TRANSIENT
            and self.connection.options.batch_transient
        ):
            self.connection.transient.offer(row)
            return
        # On the process's shared held connection where there is one (see put_connection).
        self.store.messages.put(row.queue, row.payload, row.priority, row.ttl_s)
        self.connection.wake_consumers_of(queue)

    def _write_in_transaction(self, connection: sa.Connection, rows: list[PendingRow]) -> None:
        """A publish_on() block's rows, into the caller's transaction."""
        self.store.messages.put_many(rows, connection)
        if self.store.dialect != "postgresql":
            # Wake once the caller's transaction has committed (PostgreSQL's NOTIFY is
            # delivered on commit by itself).
            for queue in dict.fromkeys(row.queue for row in rows):
                wake_after_commit(connection, queue, self.connection.wake_consumers_of)

    def _put_fanout(
        self, exchange: str, message: dict[str, Any], routing_key: str, **kwargs: Any
    ) -> None:
        # kombu's FanoutExchange.deliver calls this; basic_publish routes the same way.
        for queue in self._route(exchange, routing_key):
            self._put(queue, message, **kwargs)

    def _ttl_s(self, queue: str, properties: dict[str, Any]) -> float | None:
        """How long the message lives, in seconds (None: for ever): its own ``expiration`` or
        its queue's ``x-message-ttl``, whichever is shorter. The store adds it to the
        database's now. Raises ``PublishRefusedError`` for an ``expiration`` (milliseconds,
        as AMQP's text) that is not a number of zero or more."""
        try:
            queue_ttl_s = self._message_ttl_s[queue]
        except KeyError:
            queue_ttl_s = self._message_ttl_s[queue] = self.store.queues.queue_message_ttl_s(queue)
        expiration_ms = properties.get("expiration")
        if expiration_ms is None:
            return queue_ttl_s
        own_ttl_s = _expiration_s(queue, expiration_ms)
        return own_ttl_s if queue_ttl_s is None else min(own_ttl_s, queue_ttl_s)

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str | None, queue: str) -> None:
        """Store the binding in the database, so every process routes to this queue."""
        for kind, name in (("exchange name", exchange), ("routing key", routing_key)):
            check_name(kind, name)
        check_name("queue name", queue)
        exchange_type = self.typeof(exchange).type
        # On PostgreSQL the binding commits on its own even inside publish_on(): it must not
        # vanish with a caller's rollback. SQLite has one writer, the caller: join its work.
        connection = self._caller_connection() if self.store.dialect == "sqlite" else None
        self.store.bindings.bind(
            exchange,
            exchange_type=exchange_type,
            routing_key=routing_key,
            pattern=pattern or "",  # direct and fanout bindings have none
            queue=queue,
            connection=connection,
        )

    def queue_unbind(
        self,
        queue: str,
        exchange: str | None = None,
        routing_key: str = "",
        arguments: Any = None,
        **kwargs: Any,
    ) -> None:
        """kombu ``Channel.queue_unbind`` (AMQP queue.unbind), and the binding row is deleted from
        the database."""
        super().queue_unbind(queue, exchange, routing_key, arguments, **kwargs)
        if exchange:
            self.store.bindings.unbind(exchange, queue, routing_key)

    def basic_publish(
        self, message: dict[str, Any], exchange: str, routing_key: str, **kwargs: Any
    ) -> None:
        """Route through the bindings of every process (in the database) and of this one.
        Raises amqp's ``RecoverableConnectionError`` on a closed channel, as kombu's
        ``maybe_declare`` does."""
        if self.connection is None:
            # A producer left on a channel a retry closed (kombu's maybe_declare reconnects on
            # its own, the producer's channel stays the old one): a connection error lets the
            # producer's ensure revive it on the new channel and publish again. Without this
            # an AttributeError on the closed channel ended the publish.
            raise RecoverableConnectionError("channel closed: publish on a revived channel")
        check_name("exchange name", exchange)
        check_name("routing key", routing_key)
        self._inplace_augment_message(message, exchange, routing_key)
        if not exchange:
            self._put(routing_key, message, **kwargs)
            return
        for queue in self._route(exchange, routing_key):
            self._put(queue, message, **kwargs)

    def _route(self, exchange: str, routing_key: str) -> set[str]:
        """The queues a publish to ``exchange`` with ``routing_key`` goes to: the bindings in the
        database, read for this very publish, and this process's own (kombu's exchange table;
        on SQLite a binding inside publish_on() is not committed yet).

        Read each time, never cached: a binding committed before the publish, by any thread or
        process, must route it. Celery binds a new reply queue for each remote-control call
        just before the worker answers to it; a cached read lost those answers."""
        shared = self.store.bindings.of_exchange(exchange)
        return self._match(shared, routing_key) | self._match(
            self._local_bindings(exchange), routing_key
        )

    def _local_bindings(self, exchange: str) -> list[tuple[str, str, str, str]]:
        try:
            table = self.get_table(exchange)
            exchange_type = self.typeof(exchange).type
        except KeyError:
            return []
        return [
            (exchange_type, routing_key, pattern, queue) for routing_key, pattern, queue in table
        ]

    @staticmethod
    def _match(bindings: list[tuple[str, str, str, str]], routing_key: str) -> set[str]:
        queues = set()
        for exchange_type, bound_key, pattern, queue in bindings:
            if exchange_type == "fanout":
                queues.add(queue)
            elif exchange_type == "topic":
                if _topic_match(pattern, routing_key):
                    queues.add(queue)
            elif bound_key == routing_key:
                queues.add(queue)
        return queues

    def _caller_connection(self) -> sa.Connection | None:
        connection = bound_connection()
        if connection is not None:
            self._check_same_database(connection)
        return connection

    def _check_same_database(self, connection: sa.Connection) -> None:
        if connection is self._checked_connection:
            return
        ours, theirs = self.store.engine.url, connection.engine.url
        if _database_identity(ours) != _database_identity(theirs):
            raise TransportError(
                "publish_on() got a connection to another database than the broker's: "
                "a transactional publish must use the broker's own database"
            )
        self._checked_connection = connection

    # -- queues ----------------------------------------------------------------------------

    def prepare_queue_arguments(self, arguments: dict[str, Any] | None, **kwargs: Any) -> Any:
        """kombu ``Channel.prepare_queue_arguments``: ``Queue(expires=..., message_ttl=...)``
        keywords become RabbitMQ's ``x-expires``/``x-message-ttl`` arguments (ms), as kombu's AMQP
        transports do."""
        # Queue(expires=…, message_ttl=…) arrive as keywords: turn them into the x-arguments
        # that _new_queue reads, as kombu's AMQP transports do.
        return to_rabbitmq_queue_arguments(arguments, **kwargs)

    def _new_queue(self, queue: str, **kwargs: Any) -> None:
        check_name("queue name", queue)
        connection = self._caller_connection()
        if queue in self._declared and connection is None:
            return
        arguments = kwargs.get("arguments") or {}
        expires_ms = arguments.get("x-expires")
        ttl_ms = arguments.get("x-message-ttl")
        expires_s = float(expires_ms) / 1000 if expires_ms else None
        if expires_s is None and kwargs.get("auto_delete"):
            # AMQP deletes an auto-delete queue when its last consumer goes; here it goes once
            # no consumer has touched it for a while.
            expires_s = self.connection.options.auto_delete_after_s
        self.store.queues.declare_queue(
            queue,
            arguments or None,
            connection,
            expires_s=expires_s,
            message_ttl_s=float(ttl_ms) / 1000 if ttl_ms else None,
        )
        self._declared.add(queue)

    def _has_queue(self, queue: str, **kwargs: Any) -> bool:
        return self.store.queues.has_queue(queue, self._caller_connection())

    def _delete(self, queue: str, *args: Any, **kwargs: Any) -> None:
        self.store.queues.delete_queue(queue)
        self._declared.discard(queue)

    def _purge(self, queue: str) -> int:
        return self.store.messages.purge(queue)

    def _size(self, queue: str) -> int:
        # Inside publish_on(), read on the caller's connection: on SQLite it holds the write
        # lock, and a second connection would wait for it forever. It counts the block's
        # messages too: they are written first (but an all-or-none block's, see transactional).
        connection = self._caller_connection()
        if connection is not None:
            flush_pending(connection)
        return self.store.messages.size(queue, connection)

    # -- consuming -------------------------------------------------------------------------

    def basic_consume(
        self, queue: str, no_ack: bool, callback: Any, consumer_tag: str, **kwargs: Any
    ) -> Any:
        """kombu ``Channel.basic_consume`` (AMQP basic.consume); also starts the lease keeper and
        counts ``queue`` as consumed for wake-ups."""
        # The keeper renews leases and keeps consumed queues from expiring.
        self.leases.start()
        if no_ack:
            self._no_ack_queues.add(queue)
        self.connection.signal.consumed[queue] += 1
        return super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)

    def basic_cancel(self, consumer_tag: str) -> Any:
        """kombu ``Channel.basic_cancel`` (AMQP basic.cancel); the queue stops counting as consumed
        for wake-ups."""
        queue = self._tag_to_queue.get(consumer_tag)
        if queue is not None and consumer_tag in self._consumers:
            self.connection.signal.consumed[queue] -= 1
        result = super().basic_cancel(consumer_tag)
        if queue is not None and queue not in self._active_queues:
            self._no_ack_queues.discard(queue)
        return result

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        """kombu ``Channel.basic_get`` (AMQP basic.get): one message or None; with ``no_ack`` the
        message is deleted as it is taken."""
        if not no_ack or queue in self._no_ack_queues:
            return super().basic_get(queue, no_ack, **kwargs)
        self._no_ack_queues.add(queue)
        try:
            return super().basic_get(queue, no_ack, **kwargs)
        finally:
            self._no_ack_queues.discard(queue)

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        rows = self._claim(queue, 1)
        if not rows:
            raise Empty()
        return self._to_message(rows[0])

    def deliver_ready(self, everything: bool = True) -> int:
        """Claim what the prefetch window allows from the first of this channel's queues that
        has messages (rotating, so no queue starves) and deliver it; how many were delivered.

        Unless ``everything``, a queue found drained is skipped until something is published to
        it (its wake-up stamp moves): no empty round trip per delivery for an idle queue (such
        as a worker's remote-control queue) while another queue is busy."""
        if not self._consumers or not self._active_queues:
            return 0
        room = self.qos.can_consume_max_estimate()
        limit = (
            self.connection.options.claim_batch_max
            if room is None
            else min(room, self.connection.options.claim_batch_max)
        )
        if limit <= 0:
            return 0
        signal = self.connection.signal
        queues = list(self._active_queues)
        start = next(self._queue_rotation) % len(queues)
        for queue in queues[start:] + queues[:start]:
            # The stamp is read before the claim: a publish after it moves the stamp, so the
            # queue is not skipped next time.
            stamp = signal.stamp(queue)
            if not everything and self._drained.get(queue) == stamp:
                continue
            rows = self._claim(queue, limit)
            if len(rows) < limit:
                self._drained[queue] = stamp
            else:
                self._drained.pop(queue, None)
            if rows:
                self._deliver_all(queue, rows)
                return len(rows)
        return 0

    def _claim(self, queue: str, limit: int) -> list[ClaimedRow]:
        options = self.connection.options
        acked = self.connection.acks.take()
        no_ack = queue in self._no_ack_queues
        leased_at = time.monotonic()
        try:
            if no_ack:
                # no_ack consumers (Celery's remote control, event receivers) take messages as
                # delivered: gone at once, as AMQP does, never redelivered.
                rows = self.store.messages.take(queue, limit, acked)
            else:
                rows = self.store.messages.claim(
                    queue, self.leases.owner, options.lease_s, limit, acked
                )
        except BaseException:
            self.connection.acks.give_back(acked)
            raise
        self.leases.forget(acked)
        if rows and not no_ack:
            self.leases.hold((row.id for row in rows), leased_at)
            logger.debug(
                "claim %d from %s",
                len(rows),
                queue,
                extra={"action": "claim", "queue": queue, "count": len(rows)},
            )
        return rows

    def close(self) -> None:
        """kombu ``Channel.close``: deletes buffered acks first."""
        if self.connection is not None:
            self.connection.flush_acks()
        super().close()

    def _deliver_all(self, queue: str, rows: list[ClaimedRow]) -> None:
        for index, row in enumerate(rows):
            try:
                self.connection._deliver(self._to_message(row), queue)
            except BaseException:
                # Not delivered: hand the rest back now rather than after the lease.
                rest = [later.id for later in rows[index + 1 :]]
                self.store.messages.release(rest, self.leases.owner)
                self.leases.forget(rest)
                raise

    def decode_body(self, body: str, encoding: str | None = None) -> str | bytes:
        """kombu ``Channel.decode_body``: a delivered message's stored body, read by
        ``transport.envelope`` (text as it is, bytes for base64)."""
        return envelope.decode_body(body, encoding)

    def _to_message(self, row: ClaimedRow) -> dict[str, Any]:
        message = envelope.decode(row.payload)
        properties = message["properties"]
        properties["delivery_tag"] = f"{row.id}.{row.delivery_count}"
        if row.delivery_count > 1:
            message["redelivered"] = True
            properties["delivery_info"]["redelivered"] = True
        return message


# AMQP 0-9-1 sends queue and exchange names and routing keys as a shortstr: at most 255 bytes.
MAX_NAME_BYTES = 255


def check_name(kind: str, name: str) -> None:
    """Raise ``NameTooLongError`` for a ``name`` over ``MAX_NAME_BYTES`` in UTF-8 (``kind``:
    "queue name", "exchange name" or "routing key"): PostgreSQL refused one with a DataError
    and SQLite stored it whole, so a queue worked on one database and not on the other."""
    if len(name) > MAX_NAME_BYTES // 4 and len(name.encode()) > MAX_NAME_BYTES:
        raise NameTooLongError(
            f"{kind} {name[:40]!r}… is {len(name.encode()):,} bytes; AMQP 0-9-1 names are at "
            f"most {MAX_NAME_BYTES} bytes (RabbitMQ refuses longer ones too)"
        )


def _expiration_s(queue: str, expiration_ms: object) -> float:
    """A message's ``expiration`` property (milliseconds, text or number) in seconds; raises
    ``PublishRefusedError`` unless it is a finite number of zero or more. RabbitMQ refuses a
    negative one; stored, it would expire the message unseen. 0 is accepted, as RabbitMQ
    accepts it (the message expires at once unless a consumer takes it first)."""
    try:
        expiration = float(str(expiration_ms))
    except ValueError:
        expiration = math.nan
    if not (math.isfinite(expiration) and expiration >= 0):
        raise PublishRefusedError(
            f"message for queue {queue!r} has expiration {expiration_ms!r}: the message TTL "
            "must be a number of milliseconds of 0 or more (kombu's expiration: seconds)"
        )
    return expiration / 1000
