"""Transport options: ``broker_transport_options`` (Celery) or ``transport_options`` (kombu).

``publish_synchronous_commit`` (PostgreSQL only, off by default: None keeps the server's
setting) trades durability of the last publishes for publish rate. A commit normally returns
once its WAL record is flushed to disk (``synchronous_commit = on``); each one-by-one
``delay()`` outside a caller's transaction is such a commit, and waiting for that flush bounds
the publish rate (measured, 3,000 one-by-one ``delay()``s, ``python -m bench.publish_profile``
on a loaded two-core machine: 740-840/s on, 1,080-1,110/s off, CPU per message unchanged). With
``"off"`` the transport's own single publishes return before the flush: a crash of the
*PostgreSQL server* (or of its host) may lose publishes that had already returned, those of the
last ~3 x ``wal_writer_delay`` (600 ms with the default 200 ms); the database stays consistent
(the lost publishes are simply absent, never half-written). An application or worker crash loses
nothing: the server still writes the WAL. See PostgreSQL's manual, "Asynchronous Commit"
(https://www.postgresql.org/docs/current/wal-async-commit.html). ``"local"``, ``"remote_write"``
and ``"remote_apply"`` are PostgreSQL's choices for synchronous replication
(``synchronous_commit``).

It applies only where the transport commits a single publish of its own: on the process's shared
put connection (``put_connection``: set for the session while held, the previous value restored
before the connection goes back to the pool) and, where that connection is busy or the driver is
not psycopg, by ``SET LOCAL`` inside that publish's own transaction. Publishes inside
``publish_on()``/``send_many`` (the caller's transaction, which the caller commits), transient
batches, claims and acks keep the server's setting. On another database it is refused
(``TransportOptionError``): SQLite has ``sqlite_synchronous``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..db import (
    DEFAULT_BUSY_TIMEOUT_S,
    DEFAULT_SQLITE_SYNCHRONOUS,
    check_positive_seconds,
    check_sqlite_options,
)
from .errors import TransportOptionError

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,39}")

DEFAULT_TABLE_PREFIX = "linkmq_"
DEFAULT_LEASE_S = 30.0
DEFAULT_CLAIM_BATCH_MAX = 100
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# PostgreSQL's synchronous_commit values (``publish_synchronous_commit``), as its manual has them.
SYNCHRONOUS_COMMIT_VALUES = ("on", "off", "local", "remote_write", "remote_apply")

# kombu passes these through transport_options for its own retry logic; they are not ours.
_KOMBU_KEYS = frozenset(
    {
        "max_retries",
        "interval_start",
        "interval_step",
        "interval_max",
        "retry_errors",
        "callback",
        "errback",
        "body_encoding",
        "deadletter_queue",
        "confirm_publish",
    }
)


def _option(doc: str, unit: str = "", shown_default: str | None = None) -> dict[str, Any]:
    """A transport option's metadata: its meaning and unit, and ``shown_default`` where the
    field's default (``None``) stands for a computed one."""
    return {"doc": doc, "unit": unit, "shown_default": shown_default}


@dataclass(frozen=True)
class TransportOptions:
    """The ``linkmq+`` transport's options: Celery's ``broker_transport_options`` or kombu's
    ``transport_options``. Unknown names are refused (:class:`TransportOptionError`)."""

    table_prefix: str = field(
        default=DEFAULT_TABLE_PREFIX,
        metadata=_option("prefix of the queue tables; a lower-case SQL identifier"),
    )
    lease_s: float = field(
        default=DEFAULT_LEASE_S,
        metadata=_option(
            "how long a fetched message stays leased without renewal; a killed consumer's "
            "messages become visible again, marked redelivered, when it runs out",
            "s",
        ),
    )
    lease_renew_interval_s: float | None = field(
        default=None,
        metadata=_option(
            "how often a live consumer renews its leases", "s", shown_default="`lease_s` / 3"
        ),
    )
    polling_interval: float | None = field(
        default=None,
        metadata=_option(
            "the longest idle wait between two polls; idle waits double up to it",
            "s",
            shown_default="2 on PostgreSQL (LISTEN/NOTIFY wakes consumers), 0.25 elsewhere",
        ),
    )
    polling_interval_min_s: float = field(
        default=0.005,
        metadata=_option(
            "the first wait after a delivery; on SQLite also the least time between two rings "
            "of one queue",
            "s",
        ),
    )
    claim_batch_max: int = field(
        default=DEFAULT_CLAIM_BATCH_MAX,
        metadata=_option(
            "most messages claimed in one round trip, within the QoS window", "messages"
        ),
    )
    max_message_bytes: int = field(
        default=DEFAULT_MAX_MESSAGE_BYTES,
        metadata=_option("a larger message is refused at publish (4 MiB)", "bytes"),
    )
    auto_migrate: bool | None = field(
        default=None,
        metadata=_option(
            "create or upgrade the tables on connect; elsewhere run `link-mq db upgrade`",
            shown_default="on for SQLite files only",
        ),
    )
    sqlite_synchronous: str = field(
        default=DEFAULT_SQLITE_SYNCHRONOUS,
        metadata=_option(
            "SQLite's `synchronous` pragma under WAL: with `NORMAL` an application crash loses "
            "nothing, a power cut may lose the last commits; `FULL` fsyncs every commit"
        ),
    )
    publish_synchronous_commit: str | None = field(
        default=None,
        metadata=_option(
            "PostgreSQL only: `synchronous_commit` for the transport's own one-by-one publishes "
            "outside `publish_on()` (`on`, `off`, `local`, `remote_write`, `remote_apply`). "
            "`off` lets a publish return before its commit is flushed to disk (measured: "
            "1.3-1.5x the one-by-one `delay()`s a second): a PostgreSQL server crash may lose "
            "those of the last ~600 ms (3 x `wal_writer_delay`) that had already returned; an "
            "application or worker crash loses nothing and the database stays consistent. "
            "Publishes in the caller's transaction, claims and acks keep the server's setting; "
            "refused on other databases",
            shown_default="the server's setting",
        ),
    )
    busy_timeout_s: float = field(
        default=DEFAULT_BUSY_TIMEOUT_S,
        metadata=_option("how long SQLite waits for the write lock", "s"),
    )
    cleanup_interval_s: float = field(
        default=10.0,
        metadata=_option(
            "how often expired messages and unused queues are deleted (1,000 rows a round)", "s"
        ),
    )
    auto_delete_after_s: float = field(
        default=60.0,
        metadata=_option("an auto-delete queue no consumer used for this long is dropped", "s"),
    )
    batch_transient: bool = field(
        default=True,
        metadata=_option(
            "write transient messages (`delivery_mode` 1: Celery's events and remote control) "
            "in batches from a thread instead of a commit each; a process killed within "
            "`transient_flush_s` loses what it buffered, as AMQP allows"
        ),
    )
    transient_flush_s: float = field(
        default=0.05,
        metadata=_option(
            "at most one batch of transient messages per interval (a message after a quiet "
            "spell goes at once)",
            "s",
        ),
    )
    transient_buffer_max: int = field(
        default=10_000,
        metadata=_option(
            "buffered transient messages at which the publisher writes the batch itself "
            "(back-pressure, never a drop)",
            "messages",
        ),
    )
    engine_options: Mapping[str, Any] = field(
        default_factory=dict,
        metadata=_option(
            "extra keyword arguments for `sqlalchemy.create_engine`", shown_default="{}"
        ),
    )

    def __post_init__(self) -> None:
        if not isinstance(self.table_prefix, str) or not _IDENTIFIER.fullmatch(self.table_prefix):
            raise TransportOptionError(
                f"table_prefix {self.table_prefix!r} must be a lower-case SQL identifier "
                "(letters, digits, underscores; at most 40 characters)"
            )
        for name in (
            "lease_s",
            "polling_interval_min_s",
            "cleanup_interval_s",
            "auto_delete_after_s",
            "transient_flush_s",
        ):
            check_positive_seconds(name, getattr(self, name))
        for name in ("lease_renew_interval_s", "polling_interval"):
            if getattr(self, name) is not None:
                check_positive_seconds(name, getattr(self, name))
        if self.renew_interval_s >= self.lease_s:
            raise TransportOptionError(
                f"lease_renew_interval_s ({self.renew_interval_s}) must be shorter than "
                f"lease_s ({self.lease_s}), or leases run out between renewals"
            )
        if not isinstance(self.batch_transient, bool):
            raise TransportOptionError(
                f"batch_transient must be true or false, not {self.batch_transient!r}"
            )
        for name in ("claim_batch_max", "max_message_bytes", "transient_buffer_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TransportOptionError(f"{name} must be a positive integer, not {value!r}")
        if (
            self.publish_synchronous_commit is not None
            and self.publish_synchronous_commit not in SYNCHRONOUS_COMMIT_VALUES
        ):
            raise TransportOptionError(
                "publish_synchronous_commit must be one of PostgreSQL's synchronous_commit "
                f"values {', '.join(SYNCHRONOUS_COMMIT_VALUES)} (or None for the server's "
                f"setting), not {self.publish_synchronous_commit!r}"
            )
        check_sqlite_options(self.busy_timeout_s, self.sqlite_synchronous)

    @property
    def renew_interval_s(self) -> float:
        """Seconds between lease renewals: ``lease_renew_interval_s``, or ``lease_s / 3`` when that
        is None (not set)."""
        return self.lease_renew_interval_s or self.lease_s / 3

    @classmethod
    def from_transport_options(cls, options: Mapping[str, Any]) -> TransportOptions:
        """Build the options from kombu's ``transport_options`` mapping. kombu's own keys (e.g.
        ``polling_interval``) are passed over. Raises ``TransportOptionError`` naming any unknown
        key and listing the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known - _KOMBU_KEYS)
        if unknown:
            raise TransportOptionError(
                f"unknown linkmq transport options {unknown}; known: {sorted(known)}"
            )
        return cls(**{key: value for key, value in options.items() if key in known})
