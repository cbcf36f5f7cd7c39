"""The migrations build exactly the tables the code uses: a new database upgraded to head has
the schema of the models in ``db/schema.py`` (Alembic's autogenerate comparison finds nothing),
on SQLite, PostgreSQL and MariaDB. Each revision states its own DDL, so a change to a model
without a revision for it fails here."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from link_message_queue.db import (
    SCHEMA_REVISION,
    database_for,
    process_tables,
    queue_tables,
    upgrade,
)
from link_message_queue.transport import TransportOptions


def _models(prefix: str) -> sa.MetaData:
    """Every table of ``db.schema`` under ``prefix``, on one metadata."""
    combined = sa.MetaData()
    for metadata in (queue_tables(prefix).metadata, process_tables(prefix).metadata):
        for table in metadata.tables.values():
            table.to_metadata(combined)
    return combined


def _differences(url: str, prefix: str) -> list[Any]:
    engine = database_for(url, TransportOptions(table_prefix=prefix)).engine
    assert upgrade(engine, prefix) == SCHEMA_REVISION
    models = _models(prefix)

    def ours(name: str | None, type_: str, _parent: Any) -> bool:
        # Alembic's own version table is no model of ours.
        return type_ != "table" or (name in models.tables)

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "compare_server_default": True, "include_name": ours},
        )
        return list(compare_metadata(context, models))


def test_migrations__a_new_database_at_head_has_the_models_schema(database_url: str) -> None:
    # Given a new database, When it is upgraded to head, Then it differs from no model
    prefix = f"m{uuid.uuid4().hex[:6]}_"

    assert _differences(database_url, prefix) == []


def test_migrations__the_models_cover_every_table_the_migrations_create(sqlite_url: str) -> None:
    prefix = "every_"
    engine = database_for(sqlite_url, TransportOptions(table_prefix=prefix)).engine
    upgrade(engine, prefix)

    created = set(sa.inspect(engine).get_table_names()) - {f"{prefix}alembic_version"}
    assert created == set(_models(prefix).tables)


def test_migrations__a_new_mariadb_database_at_head_has_the_models_schema(mariadb_url: str) -> None:
    assert _differences(mariadb_url, "maria_") == []
