"""Workflow metadata: nested scalars only, merged like Zend's ``ArrayUtils::merge``."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import TypeAlias

from .errors import InvalidMessageError

Scalar: TypeAlias = str | int | float | bool
MetadataValue: TypeAlias = Scalar | list["MetadataValue"] | dict[str, "MetadataValue"]
Metadata: TypeAlias = dict[str, MetadataValue]


def validate_metadata(value: object, field: str = "metadata") -> Metadata:
    """A deep copy of ``value`` if it is a valid metadata map; PHP's ``[]`` counts as empty."""
    if isinstance(value, list) and not value:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidMessageError(field, f"must be an object, not {type(value).__name__}")
    return {_key(key, field): _value(item, f"{field}.{key}") for key, item in value.items()}


def merge_metadata(base: Metadata, update: Metadata) -> Metadata:
    """Recursive merge: maps merge key by key, lists are appended, scalars are replaced."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = merge_metadata(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged[key] = current + copy.deepcopy(value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _key(key: object, field: str) -> str:
    if not isinstance(key, str):
        raise InvalidMessageError(field, f"keys must be strings, not {type(key).__name__}")
    return key


def _value(value: object, field: str) -> MetadataValue:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMessageError(field, "must be a finite number")
        return value
    if isinstance(value, list):
        return [_value(item, f"{field}.{index}") for index, item in enumerate(value)]
    if isinstance(value, Mapping):
        return validate_metadata(value, field)
    raise InvalidMessageError(
        field, f"must be a scalar, a list or an object, not {type(value).__name__}"
    )
