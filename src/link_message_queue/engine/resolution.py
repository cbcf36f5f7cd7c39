"""prooph's channel resolution (``AbstractChannelFactory``), rule for rule.

Channels are scanned in configuration order; a channel is a candidate when its targets hold the
message's target or ``*``. Then:

1. the first channel whose origin and sender are both set and both match wins at once;
2. else the last channel with only an origin filter that matches;
3. else the last channel with only a sender filter that matches;
4. else the last channel with no filter;
5. else ``local``.

A specific target is not preferred over ``*``. Events resolve by target only (origin and sender
are not part of an event bus address), so only unfiltered channels match them.
"""

from __future__ import annotations

from collections.abc import Sequence

from .channels import LOCAL_CHANNEL, Channel


def resolve_channel(
    channels: Sequence[Channel], target: str, origin: str | None, sender: str | None
) -> Channel:
    """prooph's channel choice for ``target``: a channel matching both ``origin`` and ``sender``,
    else origin only, else sender only, else an unfiltered one, else ``local``. Raises
    ``LookupError`` when there is no ``local`` channel (build the list with ``load_channels``)."""
    origin_only: Channel | None = None
    sender_only: Channel | None = None
    unfiltered: Channel | None = None
    local: Channel | None = None
    for channel in channels:
        if channel.name == LOCAL_CHANNEL:
            local = channel
        if not channel.accepts(target):
            continue
        if channel.origin is not None and channel.sender is not None:
            if channel.origin == origin and channel.sender == sender:
                return channel
        elif channel.origin is not None:
            if channel.origin == origin:
                origin_only = channel
        elif channel.sender is not None:
            if channel.sender == sender:
                sender_only = channel
        else:
            unfiltered = channel
    chosen = origin_only or sender_only or unfiltered or local
    if chosen is None:
        raise LookupError("the channel list has no 'local' channel; build it with load_channels")
    return chosen


def command_address(origin: str, sender: str | None) -> tuple[str, str]:
    """(origin, sender) of a command's bus address; a missing sender is the origin, as prooph's
    two-part address ``target___origin`` means origin = sender."""
    return origin, origin if sender is None else sender
