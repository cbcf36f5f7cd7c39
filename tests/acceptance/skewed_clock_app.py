"""``link_message_queue.celery_app`` on a host whose clock is off: ``time.time()`` and the
``datetime.now()`` Celery's worker request code reads (where it checks a task's ``expires``)
run ``LINK_MQ_TEST_CLOCK_OFFSET_S`` seconds ahead (negative: behind)."""

from __future__ import annotations

import datetime
import os
import time

import celery.worker.request

_OFFSET = datetime.timedelta(seconds=float(os.environ.get("LINK_MQ_TEST_CLOCK_OFFSET_S", "0")))

if _OFFSET:
    _host_time = time.time
    time.time = lambda: _host_time() + _OFFSET.total_seconds()

    class _OffDatetime(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> _OffDatetime:  # type: ignore[override]
            return super().now(tz) + _OFFSET  # type: ignore[return-value]

    celery.worker.request.datetime = _OffDatetime  # type: ignore[misc]

from link_message_queue.celery_app import app  # noqa: E402  (after the clock is set)

__all__ = ["app"]
