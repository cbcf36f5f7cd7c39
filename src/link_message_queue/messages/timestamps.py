"""Timestamps on the wire: read PHP's second-precision ``+0200`` form, write UTC microseconds."""

from __future__ import annotations

from datetime import UTC, datetime

from .errors import InvalidMessageError


def now() -> datetime:
    return datetime.now(UTC)


def parse_timestamp(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidMessageError(field, f"must be an ISO-8601 string, not {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidMessageError(field, f"{value!r} is not an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        raise InvalidMessageError(field, f"{value!r} has no UTC offset")
    return parsed


def format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def require_aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidMessageError(field, "must be timezone-aware")
    return value
