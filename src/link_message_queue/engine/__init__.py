"""The workflow engine: channels, prooph's channel resolution and dispatch to targets."""

from .channels import LOCAL_CHANNEL, WILDCARD_TARGET, Channel, load_channels
from .errors import ChannelConfigError, EngineError, QueueLoopError
from .handlers import ChannelPlugin, DispatchContext, HandlerFunction, MessageHandler
from .resolution import resolve_channel
from .workflow_engine import WorkflowEngine, message_type

__all__ = [
    "LOCAL_CHANNEL",
    "WILDCARD_TARGET",
    "Channel",
    "ChannelConfigError",
    "ChannelPlugin",
    "DispatchContext",
    "EngineError",
    "HandlerFunction",
    "MessageHandler",
    "QueueLoopError",
    "WorkflowEngine",
    "load_channels",
    "message_type",
    "resolve_channel",
]
