"""One definition of a message's states (``transport/states.py``): no other module compares a
message's times itself, and the statements written as SQL text embed ``states.ready_sql``
rather than a copy of it, so a claim, ``size``, ``link-mq status`` and the metrics agree."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

import link_message_queue
from link_message_queue.db import queue_tables
from link_message_queue.db.clock import POSTGRESQL_NOW_SQL
from link_message_queue.transport import states
from link_message_queue.transport.store.connections import Connections
from link_message_queue.transport.store.postgres import PostgresMessages
from link_message_queue.transport.store.sqlite import SqliteMessages

PACKAGE_DIR = Path(link_message_queue.__file__).parent
# A comparison of a message's visibility or expiry, in Python (``message.c.visible_at <= now``)
# or in SQL text (``visible_at > :now``); assignments (``visible_at = …``) are not comparisons.
_STATE_COMPARISON = re.compile(r"\b(visible_at|expires_at)\s*(<=|>=|<|>)")


def test_states__no_module_but_states_compares_a_messages_times() -> None:
    copies = [
        f"{path.relative_to(PACKAGE_DIR)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        if path.name != "states.py" and "migrations" not in path.parts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _STATE_COMPARISON.search(line)
    ]
    assert copies == [], "write these with transport/states.py instead:\n" + "\n".join(copies)


def test_states__the_statements_written_as_text_embed_ready_sql() -> None:
    tables = queue_tables("linkmq_")
    postgres = sa.create_engine("postgresql+psycopg://localhost/never_connected")
    claims = PostgresMessages(Connections(postgres), tables)
    ready = states.ready_sql(
        tables.message, postgres.dialect, sa.literal_column(POSTGRESQL_NOW_SQL)
    )
    assert ready in claims._claim_sql.text
    assert ready in claims._take_sql.text

    lite = sa.create_engine("sqlite://")
    hot = SqliteMessages(Connections(lite), tables)
    ready = states.ready_sql(
        tables.message, sqlite.dialect(paramstyle="named"), sa.bindparam("now")
    )
    assert hot._is_ready == ready
    assert ready in hot._ready_sql
