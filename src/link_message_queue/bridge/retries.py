"""When a failed message is tried again: exponential back-off up to a ceiling."""

from __future__ import annotations

from dataclasses import dataclass

MAX_BACKOFF_S = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing workflow message is retried: up to ``max_attempts`` attempts, the first
    back-off ``backoff_s`` seconds, doubling each time up to ``MAX_BACKOFF_S``."""

    max_attempts: int = 5
    backoff_s: float = 1.0

    def gives_up_after(self, attempts: int) -> bool:
        """Whether ``attempts`` made are enough to dead-letter the message."""
        return attempts >= self.max_attempts

    def delay_s(self, attempts: int) -> float:
        """Back-off before attempt ``attempts + 1``: base, twice the base, four times, …"""
        return float(min(MAX_BACKOFF_S, self.backoff_s * 2.0 ** max(0, attempts - 1)))
