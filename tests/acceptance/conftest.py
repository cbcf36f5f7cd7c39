"""Fixtures of the acceptance tier live in the test modules; this file makes them shared."""

from __future__ import annotations

from .test_bridge import app_database_url, celery, environment  # noqa: F401
from .test_worker_crash import runs, start_worker, start_worker_on  # noqa: F401
