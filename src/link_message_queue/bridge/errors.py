"""Errors of the bridge."""

from __future__ import annotations


class BridgeError(Exception):
    """The bridge could not carry a workflow message."""


class PoisonMessageError(BridgeError):
    """A queued message can never be handled as it is (it does not decode, is not JSON, is not
    a workflow message task, or names an unknown target); it goes to dead letters at once."""


class RetryLaterError(BridgeError):
    """A handler failed; the message is to be tried again after ``delay_s``."""

    def __init__(self, delay_s: float, cause: BaseException) -> None:
        super().__init__(f"retry in {delay_s:.1f} s after {type(cause).__name__}: {cause}")
        self.delay_s = delay_s
        self.cause = cause
