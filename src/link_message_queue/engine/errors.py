"""Errors of the workflow engine."""

from __future__ import annotations


class EngineError(Exception):
    """The workflow engine could not route a message."""


class ChannelConfigError(EngineError, ValueError):
    """The channel configuration is invalid; the message names the channel and key to fix."""


class QueueLoopError(EngineError):
    """A message re-dispatched by the queue consumer would go back onto the queue."""
