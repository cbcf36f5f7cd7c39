"""Errors of the workflow processor."""

from __future__ import annotations


class ProcessorError(Exception):
    """The workflow processor cannot do what a message asks."""


class ProcessDefinitionError(ProcessorError, ValueError):
    """A process definition is invalid; the message names the process and the task."""


class InvalidPayloadError(ProcessorError, ValueError):
    """Payload data does not fit its type; ``where`` is the dotted path of the bad value."""

    # prooph's ERROR_WRONG_MESSAGE_RECEIVED: the task fails with this code.
    code = 415

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason
