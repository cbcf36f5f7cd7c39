"""The stored envelope: the JSON text a message row's ``payload`` column holds.

It is kombu's virtual-transport message, as ``Channel.basic_publish`` hands it to ``_put``::

    {"body": "<text or base64>", "content-type": "application/json",
     "content-encoding": "utf-8", "headers": {"task": "…", …},
     "properties": {"body_encoding": "utf-8" | "base64", "delivery_info": {…}, …}}

A text body (``content-encoding`` utf-8 that decodes) is stored as the text itself, readable in
the row; any other body as base64 of its bytes. This module is the one place that writes
(``encode``, ``encode_body``) and reads (``decode``, ``decode_body``, ``body_of``) that format:
the channel uses it to publish and deliver, ``delivery.Delivery`` to hand out a body directly.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .errors import EnvelopeError

TEXT = "utf-8"
BASE64 = "base64"

# Compact, and one encoder, not one per message (json.dumps builds a new one whenever an
# argument differs from its defaults).
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def encode(message: dict[str, Any]) -> str:
    """The envelope text of kombu ``message`` (its body already through ``encode_body``)."""
    return _ENCODER.encode(message)


def encode_body(body: str | bytes, content_encoding: object) -> tuple[str, str]:
    """``(stored body, body_encoding)``: the text itself when ``content_encoding`` is utf-8 and
    the body is (or decodes as) UTF-8 text, else base64 of its bytes (a ``str`` body is taken as
    UTF-8)."""
    text = _as_text(body) if content_encoding == TEXT else None
    if text is not None:
        return text, TEXT
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return base64.b64encode(raw).decode("ascii"), BASE64


def decode(payload: str) -> dict[str, Any]:
    """The kombu message stored as ``payload``; raises ``EnvelopeError`` when it is not a JSON
    object."""
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise EnvelopeError(f"the stored message is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise EnvelopeError("the stored message is not a kombu message object")
    return message


def decode_body(body: str, body_encoding: object) -> str | bytes:
    """A stored body as kombu delivers it: text as it is (``body_encoding`` utf-8 or none),
    bytes for base64. Raises ``EnvelopeError`` for invalid base64 or an unknown encoding."""
    if body_encoding is None or body_encoding == TEXT:
        return body
    if body_encoding != BASE64:
        raise EnvelopeError(f"unknown body encoding {body_encoding!r}")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise EnvelopeError(f"the stored body is not base64: {exc}") from None


def body_of(message: dict[str, Any]) -> str | bytes:
    """The body of a decoded envelope (``decode``), as ``decode_body`` gives it. Raises
    ``EnvelopeError`` when the body is not text or does not decode."""
    body = message.get("body")
    if not isinstance(body, str):
        raise EnvelopeError("the stored body is not text")
    properties = message.get("properties")
    body_encoding = properties.get("body_encoding") if isinstance(properties, dict) else None
    return decode_body(body, body_encoding)


def _as_text(body: object) -> str | None:
    if isinstance(body, str):
        return body
    if isinstance(body, bytes):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None
