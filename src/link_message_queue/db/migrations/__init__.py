"""Alembic migrations of the queue tables (run with ``link-mq db upgrade``)."""
