"""Celery configuration for link-message-queue: read from the environment, nothing else.

Every LINK_MQ_* variable is documented in the README and validated by
``link_message_queue.settings``; this file only maps them onto Celery's names.
"""

import os

_database_url = os.environ.get("LINK_MQ_DATABASE_URL", "sqlite:///link_mq.sqlite3")

broker_url = os.environ.get("LINK_MQ_BROKER_URL", f"linkmq+{_database_url}")
broker_connection_retry_on_startup = True

# JSON only: a pickled message is never accepted.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# At-least-once: a task is acked after it ran, and comes back if its worker dies.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

task_default_queue = "celery"
timezone = "UTC"
enable_utc = True
