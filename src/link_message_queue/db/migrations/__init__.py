"""Alembic migrations of every link-message-queue table (run with ``link-mq db upgrade``,
``db.migrate.upgrade``). Each revision in ``versions/`` states its own DDL, as the tables were
at that revision, and never imports today's models (``db.schema``): a later change to a model
is a new revision. ``tests/integration/test_migrations.py`` checks that the schema at head
equals the models."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op


def table_prefix() -> str:
    """The table-name prefix the running upgrade was given (``db.migrate.upgrade``)."""
    prefix: str = context.config.attributes["table_prefix"]
    return prefix


def has_table(name: str) -> bool:
    """Whether table ``name`` exists on the upgrade's connection: a revision creates only the
    tables that are missing, and drops only those present."""
    return sa.inspect(op.get_bind()).has_table(name)
