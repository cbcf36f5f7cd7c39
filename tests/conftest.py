"""Fixtures shared by every tier: real SQLite files and real PostgreSQL databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .databases import ensure_postgres, fresh_postgres_database


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
