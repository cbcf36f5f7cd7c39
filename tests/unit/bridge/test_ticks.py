"""A tick task's message header gives the time its tick occurred."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pytest

from link_message_queue.bridge.ticks import TICK_EMITTED_AT_HEADER, stamp_emission, tick_emitted


def test_ticks__a_stamped_tick_occurred_when_it_was_emitted() -> None:
    headers: dict[str, object] = {}
    before = time.time()
    stamp_emission(headers)

    tick = tick_emitted(headers[TICK_EMITTED_AT_HEADER])

    assert before <= tick.created_at.timestamp() <= time.time()
    assert tick.created_at.tzinfo is UTC


def test_ticks__a_stamp_already_there_is_kept() -> None:
    headers: dict[str, object] = {TICK_EMITTED_AT_HEADER: 1_700_000_000.5}
    stamp_emission(headers)

    assert tick_emitted(headers[TICK_EMITTED_AT_HEADER]).created_at == datetime.fromtimestamp(
        1_700_000_000.5, UTC
    )


def test_ticks__an_unstamped_tick_occurs_now() -> None:
    before = time.time()

    assert tick_emitted(None).created_at.timestamp() >= before


def test_ticks__a_stamp_that_is_no_time_is_reported_and_the_tick_occurs_now(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = time.time()

    tick = tick_emitted("yesterday")

    assert tick.created_at.timestamp() >= before
    assert "is not a Unix time" in caplog.text
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
