"""Typed access to decoded JSON that fails with :class:`InvalidMessageError` naming the field."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import InvalidMessageError

JsonObject = dict[str, Any]


def as_object(value: object, field: str) -> JsonObject:
    """A JSON object; PHP's empty array ``[]`` is the empty object."""
    if isinstance(value, list) and not value:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidMessageError(field, f"must be an object, not {type(value).__name__}")
    return dict(value)


def required(data: Mapping[str, Any], key: str, parent: str = "") -> Any:
    """``data[key]``. Raises ``InvalidMessageError`` on ``parent.key`` when the key is missing."""
    if key not in data:
        raise InvalidMessageError(_path(parent, key), "is missing")
    return data[key]


def required_str(data: Mapping[str, Any], key: str, parent: str = "") -> str:
    """``data[key]`` as a non-empty string. Raises ``InvalidMessageError`` on ``parent.key`` when
    missing or not one."""
    value = required(data, key, parent)
    if not isinstance(value, str) or not value:
        raise InvalidMessageError(_path(parent, key), "must be a non-empty string")
    return value


def optional_str(data: Mapping[str, Any], key: str, parent: str = "") -> str | None:
    """``data[key]`` as a non-empty string, or None when missing or null. Raises
    ``InvalidMessageError`` on ``parent.key`` for any other value."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidMessageError(_path(parent, key), "must be a non-empty string or null")
    return value


def required_int(data: Mapping[str, Any], key: str, parent: str = "", minimum: int = 0) -> int:
    """``data[key]`` as an integer (not a bool) of at least ``minimum``. Raises
    ``InvalidMessageError`` on ``parent.key`` when missing, not an integer or too small."""
    value = required(data, key, parent)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessageError(_path(parent, key), "must be an integer")
    if value < minimum:
        raise InvalidMessageError(_path(parent, key), f"must be at least {minimum}")
    return value


def required_bool(data: Mapping[str, Any], key: str, parent: str = "") -> bool:
    """``data[key]`` as a bool. Raises ``InvalidMessageError`` on ``parent.key`` when missing or not
    true/false."""
    value = required(data, key, parent)
    if not isinstance(value, bool):
        raise InvalidMessageError(_path(parent, key), "must be true or false")
    return value


def validate_json(value: object, field: str) -> Any:
    """``value`` if JSON can carry it unchanged (finite numbers, string keys), else an error."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMessageError(field, "must be a finite number")
        return value
    if isinstance(value, list | tuple):
        return [validate_json(item, f"{field}.{index}") for index, item in enumerate(value)]
    if isinstance(value, Mapping):
        result: JsonObject = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMessageError(field, "object keys must be strings")
            result[key] = validate_json(item, f"{field}.{key}")
        return result
    raise InvalidMessageError(field, f"{type(value).__name__} is not JSON")


def _path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key
