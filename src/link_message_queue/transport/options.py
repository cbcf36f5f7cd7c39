"""Transport options: ``broker_transport_options`` (Celery) or ``transport_options`` (kombu)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import TransportOptionError

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,39}")

DEFAULT_TABLE_PREFIX = "linkmq_"
DEFAULT_LEASE_S = 30.0
DEFAULT_CLAIM_BATCH_MAX = 100
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024

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


@dataclass(frozen=True)
class TransportOptions:
    table_prefix: str = DEFAULT_TABLE_PREFIX
    lease_s: float = DEFAULT_LEASE_S
    lease_renew_interval_s: float | None = None  # default: a third of the lease
    polling_interval: float | None = None  # idle poll ceiling; default per dialect
    polling_interval_min_s: float = 0.005
    claim_batch_max: int = DEFAULT_CLAIM_BATCH_MAX
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    auto_migrate: bool | None = None  # default: on for SQLite files only
    sqlite_synchronous: str = "NORMAL"
    busy_timeout_s: float = 30.0
    cleanup_interval_s: float = 10.0
    auto_delete_after_s: float = 60.0  # an auto-delete queue unused this long is dropped
    batch_transient: bool = True  # write delivery_mode 1 messages in batches from a thread
    transient_flush_s: float = 0.05  # at most one batch of transient messages per interval
    transient_buffer_max: int = 10_000  # a full buffer is written by the publisher
    engine_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.table_prefix, str) or not _IDENTIFIER.fullmatch(self.table_prefix):
            raise TransportOptionError(
                f"table_prefix {self.table_prefix!r} must be a lower-case SQL identifier "
                "(letters, digits, underscores; at most 40 characters)"
            )
        for name in (
            "lease_s",
            "polling_interval_min_s",
            "busy_timeout_s",
            "cleanup_interval_s",
            "auto_delete_after_s",
            "transient_flush_s",
        ):
            _positive(name, getattr(self, name))
        for name in ("lease_renew_interval_s", "polling_interval"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
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
        if self.sqlite_synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise TransportOptionError(
                "sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA, "
                f"not {self.sqlite_synchronous!r}"
            )

    @property
    def renew_interval_s(self) -> float:
        return self.lease_renew_interval_s or self.lease_s / 3

    @classmethod
    def from_transport_options(cls, options: Mapping[str, Any]) -> TransportOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known - _KOMBU_KEYS)
        if unknown:
            raise TransportOptionError(
                f"unknown linkmq transport options {unknown}; known: {sorted(known)}"
            )
        return cls(**{key: value for key, value in options.items() if key in known})


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise TransportOptionError(f"{name} must be a positive number of seconds, not {value!r}")
