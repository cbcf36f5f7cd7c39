"""Errors of the linkmq transport."""

from __future__ import annotations


class TransportError(Exception):
    """The linkmq transport could not do what was asked."""


class TransportOptionError(TransportError, ValueError):
    """A transport option has a value the transport cannot use."""


class SchemaMissingError(TransportError):
    """The queue tables do not exist (or are older than this version needs)."""


class PublishRefusedError(TransportError, ValueError):
    """A message was refused at publish time (for example: too large)."""


class DriverMissingError(TransportError, ImportError):
    """The database URL names a driver that is not installed."""


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
