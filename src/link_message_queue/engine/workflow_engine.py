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
from .channels import WILDCARD_TARGET, Channel, load_channels
from .errors import ChannelConfigError, EngineError, QueueLoopError
from .handlers import ChannelPlugin, DispatchContext, MessageHandler
from .resolution import command_address, resolve_channel

if TYPE_CHECKING:
    from sqlalchemy import Connection

logger = logging.getLogger(__name__)


class WorkflowEngine:
    """prooph processing's ``WorkflowEngine``: picks the channel for a message and the service
    that dispatches it, from ``channels`` (the ``CHANNELS`` config) and the services in
    ``registry``, on node ``node_name``. Raises ``InvalidMessageError`` for a node name under
    the minimum length and ``ChannelConfigError`` for a bad channel config."""

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
        """The service name that dispatches to ``target`` on ``channel``; this node's own name means
        the workflow processor."""
        return self._service(channel.dispatcher_for(target))

    def _service(self, name: str) -> str:
        """The service behind a dispatcher or target name: this node's name is the processor."""
        return WORKFLOW_PROCESSOR_SERVICE if name == self.node_name else name

    def check_names(self, targets: Mapping[str, str] | None = None) -> None:
        """Fail at load rather than at dispatch when a name leads nowhere: each channel's
        ``message_dispatcher`` and ``utils`` must be registered services, and every target of
        a channel that delivers here (no dispatcher, or one that queues the message for the
        consumer to deliver here) must be a registered service or this node's name (the
        workflow processor). ``targets`` adds names used elsewhere (``{target: where it is
        named}``, e.g. the process definitions' sources), held to the same rule.

        A target may also be carried away by a channel whose dispatcher does not queue (to
        another node, say): such channels' targets are not checked.

        Raises :class:`ChannelConfigError` naming the channel (or place), the unknown name and
        the registered services."""
        forwarded = {
            target
            for channel in self.channels
            if channel.message_dispatcher is not None
            and self.registry.has(self._service(channel.message_dispatcher))
            and not self.registry.enqueues(self._service(channel.message_dispatcher))
            for target in channel.targets
        }

        def delivered(target: str) -> bool:
            known_here = self.registry.has(self._service(target))
            return known_here or target in forwarded or WILDCARD_TARGET in forwarded

        for channel in self.channels:
            where = f"channel {channel.name!r}"
            for util in channel.utils:
                if not self.registry.has(util):
                    self._unknown(f"{where}: util", util)
            if channel.message_dispatcher is not None:
                dispatcher = self._service(channel.message_dispatcher)
                if not self.registry.has(dispatcher):
                    self._unknown(f"{where}: message_dispatcher", channel.message_dispatcher)
                if not self.registry.enqueues(dispatcher):
                    continue  # carried elsewhere: its targets need not be known here
            for target in channel.targets:
                if target != WILDCARD_TARGET and not delivered(target):
                    self._unknown(f"{where}: target", target)
        for target, named_in in (targets or {}).items():
            if not delivered(target):
                self._unknown(named_in, target)

    def _unknown(self, what: str, name: str) -> None:
        known = ", ".join(repr(known) for known in sorted(self.registry.names())) or "none"
        processor = (
            f" or the node name {self.node_name!r} (the workflow processor)"
            if self.registry.has(WORKFLOW_PROCESSOR_SERVICE)
            else ""
        )
        raise ChannelConfigError(
            f"{what} {name!r} names no registered service; fix the spelling or add it to "
            f"SERVICES. Registered: {known}{processor}"
        )

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
    """Command or event: a workflow message by its step, ``StartSubProcess`` a command, every other
    message an event."""
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
