"""Fixtures shared by every tier: real SQLite files, real PostgreSQL and MariaDB databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from link_message_queue.transport import upgrade
from link_message_queue.transport.options import DEFAULT_TABLE_PREFIX

from .databases import ensure_postgres, fresh_postgres_database, require_service

MARIADB_ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306/mysql"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    return ensure_postgres()


@pytest.fixture(scope="module")
def postgres_url(postgres_admin_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database for each test module."""
    with fresh_postgres_database(
        postgres_admin_url, request.module.__name__.rpartition(".")[2]
    ) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A real SQLite file, new for each test."""
    return f"sqlite:///{tmp_path / 'link_mq.sqlite3'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test body once on a SQLite file and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="module")
def migrated_postgres_url(postgres_url: str) -> str:
    """The module's PostgreSQL database with the queue tables in place."""
    engine = sa.create_engine(postgres_url)
    try:
        upgrade(engine, DEFAULT_TABLE_PREFIX)
    finally:
        engine.dispose()
    return postgres_url


@pytest.fixture(scope="module")
def mariadb_url() -> Iterator[str]:
    """A fresh MariaDB database (127.0.0.1:3306, root) for each test module, or skip (fail
    under CI=true)."""
    require_service("MariaDB", 3306)
    name = f"linkmq_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(MARIADB_ADMIN_URL, poolclass=sa.pool.NullPool)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield MARIADB_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def broker_url(request: pytest.FixtureRequest) -> str:
    """A ``linkmq+`` broker URL, once on a SQLite file (migrated on first connect) and once on
    a migrated PostgreSQL database."""
    if request.param == "sqlite":
        return "linkmq+" + str(request.getfixturevalue("sqlite_url"))
    return "linkmq+" + str(request.getfixturevalue("migrated_postgres_url"))
