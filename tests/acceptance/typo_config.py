"""A workflow config (``LINK_MQ_CONFIG``) with a typo in its queue channel's target: the
handler is registered as ``Acceptance\\Recorder``, the channel names ``Acceptance\\Recordr``."""

from __future__ import annotations

from link_message_queue.services import PRODUCER_SERVICE

from .bridge_config import HANDLER, NODE, SERVICES

TYPO = "Acceptance\\Recordr"
assert TYPO != HANDLER

CHANNELS = {
    "local": {"targets": []},
    "queue": {"targets": [TYPO], "sender": NODE, "message_dispatcher": PRODUCER_SERVICE},
}
__all__ = ["CHANNELS", "SERVICES"]
