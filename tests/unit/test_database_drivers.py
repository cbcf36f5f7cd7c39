"""A database URL whose driver is not installed: the CLI, the transport and ``require_driver`` say
which extra to install instead of a raw ``ModuleNotFoundError``. Real imports, no database: the
URLs name drivers this environment does not have (checked first)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import kombu
import pytest

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.db.engines import require_driver
from link_message_queue.transport import DriverMissingError, TransportOptionError

PG8000_URL = "postgresql+pg8000://app:secret@127.0.0.1/app"
MYSQLDB_URL = "mysql+mysqldb://app:secret@127.0.0.1/app"


def _absent(module: str) -> None:
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here: the test needs a driver that is not")


@pytest.mark.parametrize("command", [["status"], ["metrics"], ["dead-letters", "list"]])
def test_cli__missing_driver_names_the_extra(command: list[str]) -> None:
    _absent("pg8000")

    done = subprocess.run(
        [sys.executable, "-m", "link_message_queue.cli", *command],
        env={"LINK_MQ_DATABASE_URL": PG8000_URL, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "the database driver 'pg8000'" in done.stderr
    assert "pip install 'link-message-queue[postgres]'" in done.stderr
    assert "secret" not in done.stderr


def test_transport__connect_with_a_missing_driver_names_the_extra() -> None:
    _absent("MySQLdb")

    with pytest.raises(DriverMissingError) as raised:
        kombu.Connection("linkmq+" + MYSQLDB_URL).connect()

    message = str(raised.value)
    assert "No module named 'MySQLdb'" in message
    assert "pip install 'link-message-queue[mysql]'" in message
    assert "mysql+pymysql://" in message
    assert "secret" not in message


def test_require_driver__another_driver_than_ours_names_ours_too() -> None:
    # pg8000, not psycopg2: the benchmark's dramatiq-pg peer brings psycopg2 into the dev extra.
    _absent("pg8000")

    with pytest.raises(DriverMissingError) as raised:
        require_driver(PG8000_URL)

    assert "install it, or pip install 'link-message-queue[postgres]'" in str(raised.value)
    assert "postgresql+psycopg://" in str(raised.value)


def test_cli__our_driver_missing_says_which_extra_installs_it() -> None:
    # psycopg is installed here: this process is made unable to import it (None in sys.modules
    # makes every import of it fail), as where the [postgres] extra was left out.
    script = (
        "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg2'] = None; "
        "from link_message_queue.cli import main; sys.exit(main(['status']))"
    )

    done = subprocess.run(
        [sys.executable, "-c", script],
        env={"LINK_MQ_DATABASE_URL": "postgresql://app@127.0.0.1/app", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr.strip().endswith("): pip install 'link-message-queue[postgres]'")
    assert "the database driver 'psycopg'" in done.stderr


def test_require_driver__an_installed_driver_passes() -> None:
    require_driver("sqlite:///app.db")
    require_driver("postgresql+psycopg://app@db/app")  # psycopg: a dev dependency


def test_require_driver__an_unknown_database_lists_what_runs() -> None:
    with pytest.raises(TransportOptionError, match=r"link-message-queue\[postgres\]"):
        require_driver("postgresql+nosuchdriver://app@db/app")


@pytest.mark.parametrize(
    ("hostname", "transport"), [("linkmq+://db/app", None), ("sqlite", "linkmq"), ("", "linkmq")]
)
def test_transport__connect_without_a_database_url_names_the_expected_form(
    hostname: str, transport: str | None
) -> None:
    # What kombu hands the transport when no database URL follows linkmq+: refused with the
    # form, not SQLAlchemy's "Could not parse SQLAlchemy URL".
    with pytest.raises(TransportOptionError) as raised:
        kombu.Connection(hostname, transport=transport).connect()

    assert "linkmq+sqlite:///path.db" in str(raised.value)
