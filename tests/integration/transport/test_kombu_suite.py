"""kombu's transport integration suite on ``linkmq+`` over SQLite and PostgreSQL.

The classes come unmodified from the installed kombu's source distribution; this module only
supplies the fixtures they expect. Priority order is AMQP's: higher numbers first."""

from __future__ import annotations

from collections.abc import Iterator

import kombu
import pytest
from sqlalchemy.engine import make_url

import link_message_queue  # noqa: F401  (registers linkmq+)

from .kombu_suite import load_suite

suite = load_suite()

# Short leases so nothing here waits on a default 30 s lease.
_OPTIONS = {"lease_s": 5.0}


@pytest.fixture
def connection(broker_url: str) -> Iterator[kombu.Connection]:
    connection = kombu.Connection(broker_url, transport_options=_OPTIONS)
    yield connection
    connection.release()


@pytest.fixture
def invalid_connection(broker_url: str) -> kombu.Connection:
    url = make_url(broker_url.removeprefix("linkmq+"))
    if url.get_backend_name() == "sqlite":
        dead = "sqlite:////nonexistent-linkmq-dir/db.sqlite3"
    else:
        dead = url.set(port=1).render_as_string(hide_password=False)
    return kombu.Connection("linkmq+" + dead, transport_options={**_OPTIONS, "max_retries": 1})


class TestBasicFunctionality(suite.BasicFunctionality):  # type: ignore[misc,name-defined]
    pass


class TestExchangeTypes(suite.BaseExchangeTypes):  # type: ignore[misc,name-defined]
    pass


class TestTimeToLive(suite.BaseTimeToLive):  # type: ignore[misc,name-defined]
    pass


class TestPriority(suite.BasePriority):  # type: ignore[misc,name-defined]
    PRIORITY_ORDER = "asc"


class TestMessage(suite.BaseMessage):  # type: ignore[misc,name-defined]
    pass
