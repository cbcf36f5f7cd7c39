"""Timestamps on the wire: read PHP's second-precision ``+0200`` form, write UTC microseconds."""

from __future__ import annotations

from datetime import UTC, datetime

from .errors import InvalidMessageError


def now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def parse_timestamp(value: object, field: str) -> datetime:
    """Parse an ISO-8601 string with a UTC offset. Raises ``InvalidMessageError`` on ``field`` when
    ``value`` is not a string, not ISO-8601, or has no offset."""
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
    """``value`` in UTC as ISO-8601 with microseconds, e.g. ``2026-01-01T00:00:00.000000+00:00``."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def require_aware(value: datetime, field: str) -> datetime:
    """Return ``value`` if it is timezone-aware; else raise ``InvalidMessageError`` on ``field``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidMessageError(field, "must be timezone-aware")
    return value
