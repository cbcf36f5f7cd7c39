"""Settings from the environment: every ``LINK_MQ_*`` variable, typed and validated.

Each field of :class:`Settings` carries its variable, unit and meaning (``field`` metadata):
:meth:`Settings.from_env` reads the variables from there, ``link-mq --help`` lists them, and the
documentation's configuration page is generated from them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .db import TransportOptionError, database_url, masked
from .messages.ids import MIN_NODE_NAME_LENGTH

_T = TypeVar("_T")
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,39}")

ConsumeMode = Literal["tick", "worker"]

DEFAULT_DATABASE_URL = "sqlite:///link_mq.sqlite3"

# LINK_MQ_* variables read outside Settings: name -> (default, meaning).
OTHER_VARIABLES: Mapping[str, tuple[str, str]] = {
    "LINK_MQ_DEMO_CSV": ("demo_users.csv", "`link-mq demo`: the CSV file of users it imports"),
}


class SettingsError(ValueError):
    """An environment variable has a value link-message-queue cannot use."""


def _database_url(raw: str) -> str:
    try:
        make_url(raw)
    except ArgumentError:
        raise ValueError("not a SQLAlchemy database URL (e.g. sqlite:///app.db)") from None
    return raw


def _broker_url(raw: str) -> str:
    if raw.startswith("linkmq+"):
        # TransportOptionError, a ValueError, names the expected form.
        database_url(raw.removeprefix("linkmq+"))
    elif "://" not in raw:
        raise ValueError("not a broker URL (e.g. linkmq+sqlite:///app.db, redis://host/0)")
    return raw


def linkmq_database_url(broker_url: str) -> str | None:
    """The SQLAlchemy URL of a ``linkmq+`` broker URL (``linkmq+sqlite:///app.db`` gives
    ``sqlite:///app.db``); None for another broker (``amqp://…``, ``redis://…``).

    Raises :class:`SettingsError` naming the expected form when what follows ``linkmq+`` is not
    a usable database URL. Checked here because kombu routes a URL to a transport only by a
    ``+`` before ``://``: it took ``linkmq+`` or ``linkmq+sqlite`` for an AMQP host name, and a
    worker retried ``amqp://linkmq%2B:5672`` (socket.gaierror) without end."""
    if not broker_url.startswith("linkmq+"):
        return None
    url = broker_url.removeprefix("linkmq+")
    try:
        database_url(url)
    except TransportOptionError as exc:
        raise SettingsError(f"broker URL {_masked_broker(broker_url)!r}: {exc}") from None
    return url


def _masked_broker(url: str) -> str:
    prefix, plus, rest = url.partition("+")
    if plus and prefix == "linkmq":
        return f"linkmq+{masked(rest)}"
    return masked(url) if "://" in url else url


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be a positive whole number")
    return value


def _consume_mode(raw: str) -> ConsumeMode:
    if raw == "tick":
        return "tick"
    if raw == "worker":
        return "worker"
    raise ValueError("must be 'tick' or 'worker'")


def _node_name(raw: str) -> str:
    if len(raw) < MIN_NODE_NAME_LENGTH:
        raise ValueError(f"a node name needs at least {MIN_NODE_NAME_LENGTH} characters")
    return raw


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not pattern.fullmatch(raw):
            raise ValueError(f"must be {what}")
        return raw

    return parse


def _env(
    variable: str,
    parse: Callable[[str], Any],
    doc: str,
    unit: str = "",
    shown_default: str | None = None,
) -> dict[str, Any]:
    """A field's metadata: the variable it is read from, its parser, unit and meaning;
    ``shown_default`` where the default is not a constant."""
    return {
        "variable": variable,
        "parse": parse,
        "doc": doc,
        "unit": unit,
        "shown_default": shown_default,
    }


@dataclass(frozen=True)
class Settings:
    """What one process runs with; :meth:`from_env` reads it from ``LINK_MQ_*`` variables."""

    database_url: str = field(
        default=DEFAULT_DATABASE_URL,
        metadata=_env(
            "LINK_MQ_DATABASE_URL", _database_url, "the application database (a SQLAlchemy URL)"
        ),
    )
    broker_url: str = field(
        default=f"linkmq+{DEFAULT_DATABASE_URL}",
        metadata=_env(
            "LINK_MQ_BROKER_URL",
            _broker_url,
            "Celery's broker; `amqp://…` or `redis://…` puts workflow messages through the outbox",
            shown_default="`linkmq+` + the database URL",
        ),
    )
    queue: str = field(
        default="link_processing_queue",
        metadata=_env(
            "LINK_MQ_QUEUE", _matching(_QUEUE_NAME, "a queue name"), "the workflow message queue"
        ),
    )
    tick_interval_s: float = field(
        default=1.0,
        metadata=_env(
            "LINK_MQ_TICK_INTERVAL", _positive_float, "time between two ticks of Celery beat", "s"
        ),
    )
    messages_per_tick: int = field(
        default=1,
        metadata=_env(
            "LINK_MQ_MESSAGES_PER_TICK",
            _positive_int,
            "workflow messages one tick consumes at most (1, as the PHP original)",
            "messages",
        ),
    )
    consume_mode: ConsumeMode = field(
        default="tick",
        metadata=_env(
            "LINK_MQ_CONSUME_MODE",
            _consume_mode,
            "`tick`: beat's ticks drive consumer steps; `worker`: Celery workers run the messages",
        ),
    )
    max_attempts: int = field(
        default=5,
        metadata=_env(
            "LINK_MQ_MAX_ATTEMPTS",
            _positive_int,
            "tries of a failing message before it is dead-lettered",
            "tries",
        ),
    )
    node_name: str = field(
        default="localhost",
        metadata=_env(
            "LINK_MQ_NODE_NAME",
            _node_name,
            "this processing node's name: the workflow processor's target",
        ),
    )
    config_module: str | None = field(
        default=None,
        metadata=_env(
            "LINK_MQ_CONFIG",
            _matching(_MODULE_PATH, "a dotted module path"),
            "dotted module with `CHANNELS`, `SERVICES`, `ENABLE_WORKFLOW_PROCESSOR_MESSAGE_QUEUE`, "
            "`PROCESSES`, `TYPES`, `TICK_LISTENERS` (all optional)",
        ),
    )
    table_prefix: str = field(
        default="linkmq_",
        metadata=_env(
            "LINK_MQ_TABLE_PREFIX",
            _matching(_IDENTIFIER, "a lower-case SQL identifier"),
            "prefix of every table this project owns",
        ),
    )
    lease_s: float = field(
        default=30.0,
        metadata=_env(
            "LINK_MQ_LEASE_S",
            _positive_float,
            "how long a fetched message (and the outbox relay's lock) stays leased without renewal",
            "s",
        ),
    )
    retry_backoff_s: float = field(
        default=1.0,
        metadata=_env(
            "LINK_MQ_RETRY_BACKOFF_S",
            _positive_float,
            "first retry delay of a failing message; it doubles per attempt, at most 300 s",
            "s",
        ),
    )
    relay_interval_s: float = field(
        default=1.0,
        metadata=_env(
            "LINK_MQ_RELAY_INTERVAL",
            _positive_float,
            "RabbitMQ/Redis brokers: time between two outbox relays (beat)",
            "s",
        ),
    )

    @property
    def uses_outbox(self) -> bool:
        """RabbitMQ or Redis as the broker: workflow messages go through the outbox."""
        return not self.broker_url.startswith("linkmq+")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every ``LINK_MQ_*`` variable of ``env`` (default: ``os.environ``); an unset or
        blank variable takes its default. Raises :class:`SettingsError` naming the variable
        (URLs masked) for a value that cannot be used."""
        read = _Reader(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for spec in fields(cls):
            default = spec.default
            if spec.name == "broker_url":  # follows the database unless set
                default = f"linkmq+{values['database_url']}"
            values[spec.name] = read(spec.metadata["variable"], default, spec.metadata["parse"])
        return cls(**values)

    def describe(self) -> dict[str, object]:
        """The settings for display, with every password masked."""
        shown: dict[str, object] = dict(self.__dict__)
        shown["database_url"] = masked(self.database_url)
        shown["broker_url"] = _masked_broker(self.broker_url)
        return shown


# Every LINK_MQ_* variable the project reads: the settings above, and the demo's CSV file.
VARIABLES = frozenset(
    {spec.metadata["variable"] for spec in fields(Settings)} | set(OTHER_VARIABLES)
)


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __call__(self, name: str, default: _T, parse: Callable[[str], _T]) -> _T:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except (ValueError, TypeError) as exc:
            shown = _masked_broker(raw) if "URL" in name else raw
            raise SettingsError(f"{name}={shown!r} is invalid: {exc}") from None
