"""Gauges the tick consumer step records for the metrics (table ``{prefix}gauge``: tick lag,
step duration, last tick, last step's count): one row per name, the last value wins."""

from __future__ import annotations

import sqlalchemy as sa

from ..db import database_now, read_only
from ..db.dialects import single_statement_engine, upsert


class Gauges:
    """The gauges in ``table`` (``QueueTables.gauge``: name, value, updated_at) on ``engine``.
    Database errors propagate as ``sqlalchemy.exc.SQLAlchemyError``."""

    def __init__(self, engine: sa.Engine, table: sa.Table) -> None:
        self.engine = engine
        self.table = table

    def set(self, values: dict[str, float]) -> None:
        """Upsert the gauge ``values`` (name -> float), each stamped with the database's time
        (Unix seconds)."""
        dialect = self.engine.dialect.name
        with single_statement_engine(self.engine).begin() as connection:
            for name, value in sorted(values.items()):
                now = database_now(dialect)
                connection.execute(
                    upsert(
                        dialect,
                        self.table,
                        {"name": name, "value": float(value), "updated_at": now},
                        update=("value", "updated_at"),
                    )
                )

    def read(self) -> dict[str, float]:
        """Every recorded gauge, name -> value."""
        gauge = self.table
        with read_only(self.engine).connect() as connection:
            rows = connection.execute(sa.select(gauge.c.name, gauge.c.value))
            return {str(name): float(value) for name, value in rows}
