"""Processing channels: which dispatcher carries a message to a target.

Plain Python config, as prooph's ``processing.channels``::

    {"message_queue": {"targets": ["Acme\\\\Handler"], "sender": "localhost",
                       "message_dispatcher": "link.message_queue.producer"}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..services import CONSUMER_SENDER, ServiceRegistry
from .errors import ChannelConfigError

LOCAL_CHANNEL = "local"
WILDCARD_TARGET = "*"
_KEYS = frozenset({"targets", "origin", "sender", "message_dispatcher", "utils"})


@dataclass(frozen=True)
class Channel:
    """A prooph processing channel: the ``targets`` it serves (``*`` for any), optional ``origin``
    and ``sender`` filters, the ``message_dispatcher`` service that carries its messages (the target
    itself when None), and its ``utils`` plugins."""

    name: str
    targets: tuple[str, ...]
    origin: str | None = None
    sender: str | None = None
    message_dispatcher: str | None = None
    utils: tuple[str, ...] = ()

    def accepts(self, target: str) -> bool:
        """Whether the channel serves ``target`` (listed, or the wildcard ``*``)."""
        return target in self.targets or WILDCARD_TARGET in self.targets

    def dispatcher_for(self, target: str) -> str:
        """The service that carries a message to ``target``: the channel's dispatcher, or
        the target itself."""
        return self.message_dispatcher or target


def load_channels(config: Mapping[str, object], registry: ServiceRegistry) -> tuple[Channel, ...]:
    """Validated channels in configuration order; ``local`` is added when missing.

    A channel whose dispatcher puts messages on the queue must filter on ``sender``: the
    consumer re-dispatches with sender ``link.message_queue.consumer``, and any channel that
    would match that re-dispatch would put the message back on the queue forever."""
    if not isinstance(config, Mapping):
        raise ChannelConfigError(
            f"channels must be a mapping of name to channel, not {type(config).__name__}"
        )
    channels = [_load_channel(name, raw) for name, raw in config.items()]
    if not any(channel.name == LOCAL_CHANNEL for channel in channels):
        channels.append(Channel(LOCAL_CHANNEL, ()))
    for channel in channels:
        _check_loop_safety(channel, registry)
    return tuple(channels)


def _load_channel(name: object, raw: object) -> Channel:
    if not isinstance(name, str) or not name:
        raise ChannelConfigError(f"channel name {name!r} must be a non-empty string")
    if not isinstance(raw, Mapping):
        raise ChannelConfigError(f"channel {name!r} must be a mapping, not {type(raw).__name__}")
    unknown = sorted(str(key) for key in raw if key not in _KEYS)
    if unknown:
        raise ChannelConfigError(
            f"channel {name!r} has unknown keys {unknown}; allowed: {sorted(_KEYS)}"
        )
    if "targets" not in raw:
        raise ChannelConfigError(f"channel {name!r} needs 'targets' (a list; '*' for every target)")
    targets = _strings(name, "targets", raw["targets"])
    if not targets and name != LOCAL_CHANNEL:
        raise ChannelConfigError(f"channel {name!r} has empty 'targets': it could never match")
    return Channel(
        name=name,
        targets=targets,
        origin=_optional_string(name, "origin", raw.get("origin")),
        sender=_optional_string(name, "sender", raw.get("sender")),
        message_dispatcher=_optional_string(
            name, "message_dispatcher", raw.get("message_dispatcher")
        ),
        utils=_strings(name, "utils", raw.get("utils", ())),
    )


def _check_loop_safety(channel: Channel, registry: ServiceRegistry) -> None:
    if channel.message_dispatcher is None or not registry.enqueues(channel.message_dispatcher):
        return
    if channel.name == LOCAL_CHANNEL:
        raise ChannelConfigError(
            f"channel 'local' cannot use the queue dispatcher {channel.message_dispatcher!r}: "
            "it is the fallback for every message, so the consumer's re-dispatch would be "
            "queued again; give the queue its own channel with a 'sender' filter"
        )
    if channel.sender is None:
        raise ChannelConfigError(
            f"channel {channel.name!r} puts messages on the queue but has no 'sender' filter: "
            f"the consumer's re-dispatch (sender {CONSUMER_SENDER!r}) would match it and be "
            "queued again forever; set 'sender' to the sending node's name"
        )
    if channel.sender == CONSUMER_SENDER:
        raise ChannelConfigError(
            f"channel {channel.name!r} puts messages on the queue and filters on the consumer's "
            f"own sender {CONSUMER_SENDER!r}: every consumed message would be queued again"
        )


def _strings(channel: str, key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ChannelConfigError(f"channel {channel!r}: {key!r} must be a list of strings")
    for item in value:
        if not isinstance(item, str) or not item:
            raise ChannelConfigError(
                f"channel {channel!r}: {key!r} must hold non-empty strings, not {item!r}"
            )
    return tuple(value)


def _optional_string(channel: str, key: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ChannelConfigError(f"channel {channel!r}: {key!r} must be a non-empty string")
    return value
