"""Processing types: what a workflow message's ``{typeClass, data}`` payload may hold.

A registry maps the wire's type name (``typeClass``, a PHP class name in prooph) to a type:
a scalar (string, integer, float, boolean, datetime), a dictionary — a record when it names
its fields' types — or a collection of items of one type. Payload data is validated against
its type before a handler sees it; the data itself stays plain JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import InvalidPayloadError

SCALAR_KINDS = ("string", "integer", "float", "boolean", "datetime")
KINDS = (*SCALAR_KINDS, "dictionary", "collection")


@dataclass(frozen=True)
class ProcessingType:
    """A processing type (prooph's ``Prooph\\Processing\\Type``) by ``name``: a scalar ``kind``, a
    ``dictionary`` record with ``fields`` (field -> type name), or a ``collection`` of
    ``item_type``. Raises ``ValueError`` for an unknown kind."""

    name: str
    kind: str
    item_type: str | None = None  # collection: every item is of this type
    fields: Mapping[str, str] = field(default_factory=dict)  # record: field -> type name

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"type {self.name!r}: kind must be one of {KINDS}, not {self.kind!r}")


class TypeRegistry:
    """Types by name; the built-in kinds are registered under their own names."""

    def __init__(self) -> None:
        self._types: dict[str, ProcessingType] = {}
        for kind in SCALAR_KINDS:
            self.register(ProcessingType(kind, kind))
        self.register(ProcessingType("dictionary", "dictionary"))
        self.register(ProcessingType("collection", "collection"))

    def register(self, processing_type: ProcessingType) -> ProcessingType:
        """Add ``processing_type`` and return it. Raises ``ValueError`` if its name is registered
        already."""
        if processing_type.name in self._types:
            raise ValueError(f"type {processing_type.name!r} is registered already")
        self._types[processing_type.name] = processing_type
        return processing_type

    def record(self, name: str, fields: Mapping[str, str]) -> ProcessingType:
        """A dictionary with these fields, each of a registered type."""
        for field_name, type_name in fields.items():
            self.get(type_name, f"{name}.{field_name}")
        return self.register(ProcessingType(name, "dictionary", fields=dict(fields)))

    def collection(self, name: str, item_type: str) -> ProcessingType:
        """Register and return a collection type ``name`` of ``item_type`` items. Raises
        ``InvalidPayloadError`` if ``item_type`` is unknown, ``ValueError`` if ``name`` is taken."""
        self.get(item_type, f"{name} items")
        return self.register(ProcessingType(name, "collection", item_type=item_type))

    def get(self, name: str, where: str = "typeClass") -> ProcessingType:
        """The type called ``name``. Raises ``InvalidPayloadError`` on ``where`` if none is
        registered."""
        try:
            return self._types[name]
        except KeyError:
            raise InvalidPayloadError(where, f"unknown type {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def validate(self, type_name: str, data: Any, where: str = "data") -> None:
        """Raise ``InvalidPayloadError`` naming the first bad place in ``data``. ``None`` is
        valid for every type: a collect-data command carries no data yet."""
        if data is None:
            return
        processing_type = self.get(type_name)
        kind = processing_type.kind
        if kind == "string":
            _expect(isinstance(data, str), where, "a string", data)
        elif kind == "integer":
            _expect(isinstance(data, int) and not isinstance(data, bool), where, "an integer", data)
        elif kind == "float":
            number = isinstance(data, int | float) and not isinstance(data, bool)
            _expect(number, where, "a number", data)
        elif kind == "boolean":
            _expect(isinstance(data, bool), where, "true or false", data)
        elif kind == "datetime":
            iso = isinstance(data, str) and _is_iso_datetime(data)
            _expect(iso, where, "an ISO-8601 time", data)
        elif kind == "dictionary":
            _expect(isinstance(data, dict), where, "an object", data)
            for name, field_type in processing_type.fields.items():
                if name not in data:
                    raise InvalidPayloadError(f"{where}.{name}", "is missing")
                self.validate(field_type, data[name], f"{where}.{name}")
        else:
            _expect(isinstance(data, list), where, "a list", data)
            if processing_type.item_type is not None:
                for index, item in enumerate(data):
                    self.validate(processing_type.item_type, item, f"{where}[{index}]")


def _expect(ok: bool, where: str, what: str, data: Any) -> None:
    if not ok:
        raise InvalidPayloadError(where, f"must be {what}, not {type(data).__name__} {data!r:.40}")


def _is_iso_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
