"""Errors raised while opening or migrating the database. ``TransportError`` is the base of every
linkmq error: the transport raises these too and re-exports them
(``link_message_queue.transport``), so ``except TransportError`` catches them all."""

from __future__ import annotations


class TransportError(Exception):
    """The linkmq transport (or the database below it) could not do what was asked."""


class TransportOptionError(TransportError, ValueError):
    """A transport option or database setting has a value that cannot be used (an in-memory
    SQLite URL, an unknown ``sqlite_synchronous``, a non-positive timeout, …)."""


class SchemaMissingError(TransportError):
    """The queue tables do not exist (or are older than this version needs): run
    ``link-mq db upgrade``."""


class DriverMissingError(TransportError, ImportError):
    """The database URL names a driver that is not installed; the message says what to
    install."""
