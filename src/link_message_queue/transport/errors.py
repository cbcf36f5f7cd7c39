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
