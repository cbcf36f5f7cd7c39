"""The workflow engine: routes a processing message over its channel to its target."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..messages import (
    DEFAULT_NODE_NAME,
    MessageType,
    ProcessingMessage,
    RemoteMessage,
    StartSubProcess,
    TickOccurred,
    WorkflowMessage,
    from_remote,
)
from ..messages.ids import validate_node_name
from ..services import CONSUMER_SENDER, WORKFLOW_PROCESSOR_SERVICE, ServiceRegistry
from .channels import Channel, load_channels
from .errors import EngineError, QueueLoopError
from .handlers import ChannelPlugin, DispatchContext, MessageHandler
from .resolution import command_address, resolve_channel

if TYPE_CHECKING:
    from sqlalchemy import Connection

logger = logging.getLogger(__name__)


class WorkflowEngine:
    def __init__(
        self,
        channels: Mapping[str, object],
        registry: ServiceRegistry,
        node_name: str = DEFAULT_NODE_NAME,
    ) -> None:
        self.node_name = validate_node_name(node_name)
        self.registry = registry
        self.channels: tuple[Channel, ...] = load_channels(channels, registry)

    def channel_for(self, message: ProcessingMessage, sender: str | None = None) -> Channel:
        """The channel prooph would pick: commands by target, origin and sender; events by
        target only."""
        if message_type(message) is MessageType.COMMAND:
            origin, address_sender = command_address(message.origin, sender)
            return resolve_channel(self.channels, message.target, origin, address_sender)
        return resolve_channel(self.channels, message.target, None, None)

    def dispatcher_name(self, channel: Channel, target: str) -> str:
        name = channel.dispatcher_for(target)
        return WORKFLOW_PROCESSOR_SERVICE if name == self.node_name else name

    def dispatch(
        self,
        message: ProcessingMessage | RemoteMessage,
        sender: str | None = None,
        *,
        connection: Connection | None = None,
        attempt: int = 1,
    ) -> None:
        """Route ``message`` to its target. Handler errors propagate to the caller.

        ``connection`` is the transaction the handler works in (a consumer step's); messages the
        handler dispatches on through the queue join it. ``attempt`` counts tries (from 1)."""
        if isinstance(message, RemoteMessage):
            decoded = from_remote(message)
            if isinstance(decoded, TickOccurred):
                raise EngineError(
                    "TickOccurred is an event for tick listeners, not a routed message"
                )
            message = decoded
        channel = self.channel_for(message, sender)
        name = self.dispatcher_name(channel, message.target)
        if sender == CONSUMER_SENDER and self.registry.enqueues(name):
            raise QueueLoopError(
                f"{message.name} for {message.target!r} came off the queue and channel "
                f"{channel.name!r} would queue it again via {name!r}"
            )
        context = DispatchContext(self, channel, sender, connection, attempt)
        handler = self.registry.get(name)
        plugins = [self._plugin(util) for util in channel.utils]
        logger.debug(
            "dispatch %s %s -> %s over %s via %s",
            message.name,
            message.origin,
            message.target,
            channel.name,
            name,
            extra={"action": "dispatch", "channel": channel.name, "dispatcher": name},
        )
        for plugin in plugins:
            plugin.before_dispatch(message, context)
        try:
            _call(handler, name, message, context)
        except BaseException as exc:
            for plugin in plugins:
                plugin.after_dispatch(message, context, exc)
            raise
        for plugin in plugins:
            plugin.after_dispatch(message, context, None)

    def _plugin(self, name: str) -> ChannelPlugin:
        plugin = self.registry.get(name)
        if not isinstance(plugin, ChannelPlugin):
            raise EngineError(
                f"channel util {name!r} is a {type(plugin).__name__}, "
                "which has no before_dispatch/after_dispatch"
            )
        return plugin


def message_type(message: ProcessingMessage) -> MessageType:
    if isinstance(message, WorkflowMessage):
        return message.message_type
    return MessageType.COMMAND if isinstance(message, StartSubProcess) else MessageType.EVENT


def _call(handler: object, name: str, message: ProcessingMessage, context: DispatchContext) -> None:
    if isinstance(handler, MessageHandler):
        handler.handle(message, context)
    elif callable(handler):
        handler(message, context)
    else:
        raise EngineError(
            f"service {name!r} is a {type(handler).__name__}: "
            "neither a handler with handle(message, context) nor a callable"
        )
