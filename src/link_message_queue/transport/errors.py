"""Errors of the linkmq transport. The ones the database layer raises too (``TransportError``,
their base, ``TransportOptionError``, ``SchemaMissingError``, ``DriverMissingError``) are defined
in :mod:`link_message_queue.db.errors` and re-exported here."""

from __future__ import annotations

from ..db.errors import DriverMissingError, SchemaMissingError, TransportError, TransportOptionError

__all__ = [
    "DeferredTransactionError",
    "DriverMissingError",
    "NameTooLongError",
    "PublishRefusedError",
    "SchemaMissingError",
    "TransportError",
    "TransportOptionError",
]


class PublishRefusedError(TransportError, ValueError):
    """A message was refused at publish time (for example: too large)."""


class NameTooLongError(TransportError, ValueError):
    """A queue name, exchange name or routing key over AMQP 0-9-1's 255 bytes (a ``shortstr``;
    RabbitMQ refuses longer ones too), refused before anything is written."""


class DeferredTransactionError(TransportError):
    """A publish inside a SQLite transaction that began DEFERRED could not take the write lock:
    begin the application's transactions with BEGIN IMMEDIATE (``sqlite_engine(url)`` or
    ``configure_sqlite_engine(engine)`` in ``link_message_queue.transport``)."""


class EnvelopeError(TransportError, ValueError):
    """A stored message cannot be read: its envelope is not a kombu message in JSON, or its body
    does not decode (``transport.envelope``)."""


class LeaseLostError(TransportError):
    """A delivery's lease ran out and was no longer this consumer's when it was completed: the
    message may have been delivered to another consumer (``Delivery.complete``)."""
