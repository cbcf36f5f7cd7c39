"""The test setup gives each module a real, fresh database on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa


def test_databases__each_backend_is_real_and_writable(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE probe (id INTEGER PRIMARY KEY)"))
            connection.execute(sa.text("INSERT INTO probe (id) VALUES (1)"))
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM probe")).scalar_one() == 1
            dialect = connection.dialect.name
    finally:
        engine.dispose()
    assert dialect in {"sqlite", "postgresql"}
    assert dialect in database_url
