"""prooph common's ``RemoteMessage``: the generic envelope every message travels in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from .errors import InvalidMessageError
from .fields import JsonObject, as_object, required, required_int, required_str, validate_json
from .timestamps import format_timestamp, parse_timestamp, require_aware


class MessageType(Enum):
    """prooph's message types: a command (one handler) or an event (any number)."""

    COMMAND = "command"
    EVENT = "event"


@dataclass(frozen=True)
class MessageHeader:
    """prooph's ``MessageHeader``: ``uuid``, ``created_at`` (timezone-aware), ``version`` (>= 0),
    ``type`` and JSON ``metadata``. Raises ``InvalidMessageError`` when ``created_at`` is naive or
    ``version`` negative."""

    uuid: UUID
    created_at: datetime
    version: int
    type: MessageType
    metadata: JsonObject = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_aware(self.created_at, "header.created_at")
        if self.version < 0:
            raise InvalidMessageError("header.version", "must not be negative")

    def to_dict(self) -> JsonObject:
        """The header as a JSON object (ISO-8601 time in UTC, microseconds)."""
        return {
            "uuid": str(self.uuid),
            "created_at": format_timestamp(self.created_at),
            "version": self.version,
            "type": self.type.value,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, value: object) -> MessageHeader:
        """Parse a header object (``createdOn`` of prooph < 0.3 is accepted for ``created_at``).
        Raises ``InvalidMessageError`` naming the bad ``header.<field>``."""
        data = as_object(value, "header")
        # prooph processing < 0.3 wrote ``createdOn``; accept it so old rows stay readable.
        created_key = (
            "created_at" if "created_at" in data or "createdOn" not in data else "createdOn"
        )
        raw_type = required(data, "type", "header")
        try:
            message_type = MessageType(raw_type)
        except (ValueError, TypeError):
            raise InvalidMessageError(
                "header.type", f"{raw_type!r} is not command or event"
            ) from None
        return cls(
            uuid=parse_uuid(required(data, "uuid", "header"), "header.uuid"),
            created_at=parse_timestamp(
                required(data, created_key, "header"), f"header.{created_key}"
            ),
            version=required_int(data, "version", "header"),
            type=message_type,
            metadata=validate_json(
                as_object(data.get("metadata", {}), "header.metadata"), "header.metadata"
            ),
        )


@dataclass(frozen=True)
class RemoteMessage:
    """prooph common's ``RemoteMessage``: a message ``name``, its ``header`` and a JSON object
    ``payload``."""

    name: str
    header: MessageHeader
    payload: JsonObject

    def to_dict(self) -> JsonObject:
        """The envelope as a JSON object: ``{"name", "header", "payload"}``."""
        return {"name": self.name, "header": self.header.to_dict(), "payload": self.payload}

    @classmethod
    def from_dict(cls, value: object) -> RemoteMessage:
        """Parse an envelope object. Raises ``InvalidMessageError`` naming the bad field."""
        data = as_object(value, "message")
        name = required_str(data, "name")
        header = MessageHeader.from_dict(required(data, "header"))
        payload: Any = validate_json(as_object(required(data, "payload"), "payload"), "payload")
        return cls(name=name, header=header, payload=payload)


def parse_uuid(value: object, field: str) -> UUID:
    """``value`` as a UUID (a UUID or its string). Raises ``InvalidMessageError`` on ``field``
    otherwise."""
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str):
        raise InvalidMessageError(field, "must be a UUID string")
    try:
        return UUID(value)
    except ValueError:
        raise InvalidMessageError(field, f"{value!r} is not a UUID") from None
