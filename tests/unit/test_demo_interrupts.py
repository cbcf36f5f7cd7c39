"""A stop signal during the demo is never lost, even when it lands in a finalizer."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from link_message_queue.demo.interrupts import Interrupts, StopSignal


class _SignalInFinalizer:
    """Garbage whose finalizer is where the signal lands: Python prints "Exception ignored"
    for the KeyboardInterrupt raised there and goes on."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:
        os.kill(os.getpid(), self.signum)
        sum(range(1000))  # the handler runs at the next bytecode, still inside __del__


def _signal_here(signum: int) -> None:
    os.kill(os.getpid(), signum)
    sum(range(1000))  # the handler runs at the next bytecode, here


def _collect_with_signal(signum: int) -> None:
    _SignalInFinalizer(signum)  # dropped at once: __del__ runs here


def test_without_the_guard_a_signal_in_a_finalizer_is_swallowed() -> None:
    # The fault the guard exists for: nothing reaches the caller.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    unraisable = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        _collect_with_signal(signal.SIGINT)
    finally:
        sys.unraisablehook = hook
        signal.signal(signal.SIGINT, previous)
    assert [type(u.exc_value) for u in unraisable] == [KeyboardInterrupt]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_swallowed_in_a_finalizer_is_raised_again_at_the_next_check(signum: int) -> None:
    with Interrupts() as interrupts:
        _collect_with_signal(signum)  # swallowed here, no traceback printed
        assert interrupts.received == signum
        with pytest.raises(KeyboardInterrupt) as raised:
            interrupts.check()
        # which signal it was, for the exit code (128 + signum)
        assert isinstance(raised.value, StopSignal)
        assert raised.value.signum == signum
        interrupts.check()  # once raised, it is not raised again


def test_a_signal_in_plain_code_is_raised_by_the_next_check_once() -> None:
    # Never raised where it lands (a finalizer swallows it, __set_name__ wraps it).
    with Interrupts() as interrupts:
        _signal_here(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
        interrupts.check()
    assert interrupts.received == signal.SIGINT


def test_handlers_come_back_on_exit() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with Interrupts():
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    assert {sig: signal.getsignal(sig) for sig in before} == before
