"""Settings from the environment: every ``LINK_MQ_*`` variable, typed and validated.

| variable | default | meaning |
| --- | --- | --- |
| ``LINK_MQ_DATABASE_URL`` | ``sqlite:///link_mq.sqlite3`` | the application database |
| ``LINK_MQ_BROKER_URL`` | ``linkmq+`` + the database URL | Celery's broker |
| ``LINK_MQ_QUEUE`` | ``link_processing_queue`` | the workflow message queue |
| ``LINK_MQ_TICK_INTERVAL`` | ``1.0`` | seconds between two ticks of Celery beat |
| ``LINK_MQ_MESSAGES_PER_TICK`` | ``1`` | workflow messages one tick consumes at most |
| ``LINK_MQ_CONSUME_MODE`` | ``tick`` | ``tick`` (beat drives consumer steps) or ``worker`` |
| ``LINK_MQ_MAX_ATTEMPTS`` | ``5`` | tries of a failing message before it is dead-lettered |
| ``LINK_MQ_NODE_NAME`` | ``localhost`` | this processing node's name |
| ``LINK_MQ_CONFIG`` | (none) | dotted module with ``CHANNELS`` and ``SERVICES`` |
| ``LINK_MQ_TABLE_PREFIX`` | ``linkmq_`` | prefix of every table this project owns |
| ``LINK_MQ_LEASE_S`` | ``30`` | seconds a fetched message stays leased without renewal |
| ``LINK_MQ_RETRY_BACKOFF_S`` | ``1`` | first retry delay; it doubles per attempt (at most 300 s) |
| ``LINK_MQ_RELAY_INTERVAL`` | ``1.0`` | RabbitMQ/Redis brokers: seconds between two relays |
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .messages.ids import MIN_NODE_NAME_LENGTH
from .transport.engines import masked

_T = TypeVar("_T")
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,39}")

ConsumeMode = Literal["tick", "worker"]

# Every LINK_MQ_* variable the project reads: the settings below, and the demo's CSV file.
VARIABLES = frozenset(
    {
        "LINK_MQ_DATABASE_URL",
        "LINK_MQ_BROKER_URL",
        "LINK_MQ_QUEUE",
        "LINK_MQ_TICK_INTERVAL",
        "LINK_MQ_MESSAGES_PER_TICK",
        "LINK_MQ_CONSUME_MODE",
        "LINK_MQ_MAX_ATTEMPTS",
        "LINK_MQ_NODE_NAME",
        "LINK_MQ_CONFIG",
        "LINK_MQ_TABLE_PREFIX",
        "LINK_MQ_LEASE_S",
        "LINK_MQ_RETRY_BACKOFF_S",
        "LINK_MQ_RELAY_INTERVAL",
        "LINK_MQ_DEMO_CSV",
    }
)


class SettingsError(ValueError):
    """An environment variable has a value link-message-queue cannot use."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///link_mq.sqlite3"
    broker_url: str = "linkmq+sqlite:///link_mq.sqlite3"
    queue: str = "link_processing_queue"
    tick_interval_s: float = 1.0
    messages_per_tick: int = 1
    consume_mode: ConsumeMode = "tick"
    max_attempts: int = 5
    node_name: str = "localhost"
    config_module: str | None = None
    table_prefix: str = "linkmq_"
    lease_s: float = 30.0
    retry_backoff_s: float = 1.0
    relay_interval_s: float = 1.0

    @property
    def uses_outbox(self) -> bool:
        """RabbitMQ or Redis as the broker: workflow messages go through the outbox."""
        return not self.broker_url.startswith("linkmq+")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        source = os.environ if env is None else env
        read = _Reader(source)
        database_url = read("LINK_MQ_DATABASE_URL", cls.database_url, _database_url)
        return cls(
            database_url=database_url,
            broker_url=read("LINK_MQ_BROKER_URL", f"linkmq+{database_url}", _broker_url),
            queue=read("LINK_MQ_QUEUE", cls.queue, _matching(_QUEUE_NAME, "a queue name")),
            tick_interval_s=read("LINK_MQ_TICK_INTERVAL", cls.tick_interval_s, _positive_float),
            messages_per_tick=read(
                "LINK_MQ_MESSAGES_PER_TICK", cls.messages_per_tick, _positive_int
            ),
            consume_mode=read("LINK_MQ_CONSUME_MODE", cls.consume_mode, _consume_mode),
            max_attempts=read("LINK_MQ_MAX_ATTEMPTS", cls.max_attempts, _positive_int),
            node_name=read("LINK_MQ_NODE_NAME", cls.node_name, _node_name),
            config_module=read(
                "LINK_MQ_CONFIG", None, _matching(_MODULE_PATH, "a dotted module path")
            ),
            table_prefix=read(
                "LINK_MQ_TABLE_PREFIX",
                cls.table_prefix,
                _matching(_IDENTIFIER, "a lower-case SQL identifier"),
            ),
            lease_s=read("LINK_MQ_LEASE_S", cls.lease_s, _positive_float),
            retry_backoff_s=read("LINK_MQ_RETRY_BACKOFF_S", cls.retry_backoff_s, _positive_float),
            relay_interval_s=read("LINK_MQ_RELAY_INTERVAL", cls.relay_interval_s, _positive_float),
        )

    def describe(self) -> dict[str, object]:
        """The settings for display, with every password masked."""
        shown: dict[str, object] = dict(self.__dict__)
        shown["database_url"] = masked(self.database_url)
        shown["broker_url"] = _masked_broker(self.broker_url)
        return shown


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


def _database_url(raw: str) -> str:
    try:
        make_url(raw)
    except ArgumentError:
        raise ValueError("not a SQLAlchemy database URL (e.g. sqlite:///app.db)") from None
    return raw


def _broker_url(raw: str) -> str:
    if "://" not in raw:
        raise ValueError("not a broker URL (e.g. linkmq+sqlite:///app.db, redis://host/0)")
    return raw


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
