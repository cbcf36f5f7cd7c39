"""The seams between the engine and the code it calls: handlers and channel plugins."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..messages import ProcessingMessage

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from .channels import Channel
    from .workflow_engine import WorkflowEngine


@dataclass(frozen=True)
class DispatchContext:
    """What a handler gets beside the message: the engine (to answer through), who sent the
    message, the channel it came over, and — inside a consumer step — the application database
    connection whose transaction commits together with the message's removal from the queue,
    and which attempt at the message this is (1 for the first)."""

    engine: WorkflowEngine
    channel: Channel
    sender: str | None = None
    connection: Connection | None = None
    attempt: int = 1


@runtime_checkable
class MessageHandler(Protocol):
    """A target or a dispatcher: anything that takes a routed message."""

    def handle(self, message: ProcessingMessage, context: DispatchContext) -> None:
        """Handle ``message``; raise to have it retried (see the bridge's retry policy)."""


HandlerFunction = Callable[[ProcessingMessage, DispatchContext], None]


@runtime_checkable
class ChannelPlugin(Protocol):
    """A channel ``utils`` entry: told before and after each dispatch over its channel."""

    def before_dispatch(self, message: ProcessingMessage, context: DispatchContext) -> None:
        """Called before ``message`` is dispatched on the channel."""

    def after_dispatch(
        self, message: ProcessingMessage, context: DispatchContext, error: BaseException | None
    ) -> None:
        """Called after ``message`` was dispatched; ``error`` is what it raised, or None."""
