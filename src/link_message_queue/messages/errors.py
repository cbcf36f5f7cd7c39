"""Errors of the message model.

Every problem with a message's content raises :class:`InvalidMessageError`, which names the
field at fault as a dotted path (``header.created_at``, ``payload.json.typeClass``), so a bad row
can be found and fixed without guessing. Decoding never lets a bare ``KeyError`` or ``TypeError``
escape.
"""

from __future__ import annotations


class MessageError(Exception):
    """A workflow message could not be built, transformed or read."""


class InvalidMessageError(MessageError, ValueError):
    """A message field is missing or has a value the wire format does not allow."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")

    def within(self, parent: str) -> InvalidMessageError:
        """The same error with its field path prefixed by ``parent`` (for nested decoding)."""
        return InvalidMessageError(f"{parent}.{self.field}" if self.field else parent, self.reason)


class WorkflowTransitionError(MessageError):
    """A transformation was asked of a workflow message that is not in the state it needs."""
