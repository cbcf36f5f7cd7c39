"""Built-in connectors, enough for a real workflow: read rows from a CSV file or a SQL table,
write rows into a SQL table (SQLAlchemy Core).

Sources honour chunking: a collect-data command with ``offset`` and ``limit`` metadata gets
those rows only, and every answer says ``total_items``. The SQL connectors work on the
dispatch's connection — inside a consumer step, the step's transaction — so rows are written
exactly when the step commits, and never twice.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..engine import DispatchContext
from ..messages import Payload, WorkflowMessage
from .errors import InvalidPayloadError, ProcessorError
from .handlers import WorkflowMessageHandler
from .types import TypeRegistry

_CONVERTERS: Mapping[str, Callable[[str], Any]] = {
    "integer": int,
    "float": float,
    "boolean": lambda text: text.strip().lower() in {"1", "true", "yes"},
}


def _window(message: WorkflowMessage, rows: list[Any]) -> list[Any]:
    offset = message.metadata.get("offset", 0)
    limit = message.metadata.get("limit")
    if not isinstance(offset, int) or (limit is not None and not isinstance(limit, int)):
        raise InvalidPayloadError("metadata", "offset and limit must be integers")
    return rows[offset : None if limit is None else offset + limit]


class CsvSource(WorkflowMessageHandler):
    """Answers collect-data with the rows of a CSV file (a header line names the fields). When
    the collection's items are records, fields are converted to their types."""

    def __init__(self, path: str | Path, types: TypeRegistry | None = None) -> None:
        super().__init__(types)
        self.path = Path(path)

    def handle_collect_data(
        self, message: WorkflowMessage, context: DispatchContext
    ) -> WorkflowMessage:
        """Answer with the CSV file's rows (typed per the payload's type), windowed by the message's
        ``offset``/``limit`` metadata, and ``total_items`` in the answer's metadata."""
        with self.path.open(newline="", encoding="utf-8") as file:
            rows = [self._typed(message.payload.type_class, row) for row in csv.DictReader(file)]
        return message.answer_with(
            Payload(message.payload.type_class, _window(message, rows)),
            {"total_items": len(rows)},
        )

    def _typed(self, collection_type: str, row: dict[str, str]) -> dict[str, Any]:
        if collection_type not in self.types:
            return dict(row)
        item_type = self.types.get(collection_type).item_type
        if item_type is None or item_type not in self.types:
            return dict(row)
        fields = self.types.get(item_type).fields
        typed: dict[str, Any] = {}
        for name, value in row.items():
            kind = self.types.get(fields[name]).kind if name in fields else "string"
            try:
                typed[name] = _CONVERTERS.get(kind, str)(value)
            except ValueError:
                raise InvalidPayloadError(
                    f"{self.path.name}.{name}", f"{value!r} is not {kind}"
                ) from None
        return typed


class SqlTableSource(WorkflowMessageHandler):
    """Answers collect-data with the rows of a table in the application database, in
    ``order_by`` order (offset/limit for chunks)."""

    def __init__(self, table: str, order_by: str, types: TypeRegistry | None = None) -> None:
        super().__init__(types)
        self.table = table
        self.order_by = order_by

    def handle_collect_data(
        self, message: WorkflowMessage, context: DispatchContext
    ) -> WorkflowMessage:
        """Answer with the table's rows ordered by ``order_by``, windowed by ``offset``/``limit``
        metadata, on the step's connection; ``total_items`` is the table's row count. Raises
        ``ProcessorError`` when run without a database connection."""
        connection = _require_connection(context, type(self).__name__)
        table = sa.Table(self.table, sa.MetaData(), autoload_with=connection)
        total = connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        statement = sa.select(table).order_by(table.c[self.order_by])
        offset, limit = message.metadata.get("offset", 0), message.metadata.get("limit")
        if isinstance(offset, int) and offset:
            statement = statement.offset(offset)
        if isinstance(limit, int):
            statement = statement.limit(limit)
        rows = [dict(row._mapping) for row in connection.execute(statement)]
        return message.answer_with(
            Payload(message.payload.type_class, rows), {"total_items": int(total)}
        )


class SqlTableTarget(WorkflowMessageHandler):
    """Writes process-data's rows (a collection of records, or one record) into a table of the
    application database, in the step's transaction; answers data-processed with
    ``written``."""

    def __init__(self, table: str, types: TypeRegistry | None = None) -> None:
        super().__init__(types)
        self.table = table

    def handle_process_data(
        self, message: WorkflowMessage, context: DispatchContext
    ) -> WorkflowMessage:
        """Insert the payload's record(s) into the table on the step's connection and answer
        data-processed with ``{"written": n}``. Raises ``InvalidPayloadError`` for a non-record item
        or a key that is not a column."""
        connection = _require_connection(context, type(self).__name__)
        data = message.payload.data
        rows = data if isinstance(data, list) else [data]
        if not all(isinstance(row, dict) for row in rows):
            raise InvalidPayloadError("data", "SqlTableTarget writes records (objects)")
        table = sa.Table(self.table, sa.MetaData(), autoload_with=connection)
        unknown = {key for row in rows for key in row} - set(table.c.keys())
        if unknown:
            missing = sorted(unknown)
            raise InvalidPayloadError("data", f"table {self.table} has no columns {missing}")
        if rows:
            connection.execute(sa.insert(table), rows)
        return message.answer_with_data_processing_completed({"written": len(rows)})


def _require_connection(context: DispatchContext, who: str) -> sa.Connection:
    if context.connection is None:
        raise ProcessorError(
            f"{who} works on the application database: dispatch through a consumer step "
            "(or pass connection=)"
        )
    return context.connection
