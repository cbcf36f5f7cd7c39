"""Celery settings derived from :class:`~link_message_queue.settings.Settings`."""

from __future__ import annotations

from typing import Any

from kombu.entity import Queue

from .bridge.taskbody import RELAY_TASK, TICK_TASK, WORKFLOW_TASK
from .settings import Settings, linkmq_database_url

DEFAULT_QUEUE = "celery"


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration (a dict for ``app.conf.update``) for ``settings``: broker URL and
    transport options, JSON only, late acks (at-least-once), the queues of the consume mode, routes
    and beat's tick schedule. Raises ``SettingsError`` for a ``linkmq+`` broker URL without a
    database URL after the ``+`` (kombu would take it for an AMQP host)."""
    linkmq_database_url(settings.broker_url)
    # Tick mode: workers run ticks only; the workflow queue is drained by consumer steps.
    # Worker mode: workers also consume the workflow queue and run link.workflow_message.
    queues = [Queue(DEFAULT_QUEUE)]
    if settings.consume_mode == "worker":
        queues.append(Queue(settings.queue))
    transport_options: dict[str, Any] = {}
    if not settings.uses_outbox:
        transport_options = {"table_prefix": settings.table_prefix, "lease_s": settings.lease_s}
    elif _is_rabbitmq(settings.broker_url):
        # The relay deletes an outbox row only once RabbitMQ confirmed its message.
        transport_options = {"confirm_publish": True}
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport_options,
        # JSON only: a pickled message is never accepted.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        # At-least-once: acked after the task ran, back on the queue if its worker dies.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": DEFAULT_QUEUE,
        "task_queues": queues,
        "task_routes": {WORKFLOW_TASK: {"queue": settings.queue}},
        # A message the worker cannot decode (pickle, a broken body) goes to dead letters.
        "worker_consumer": "link_message_queue.worker_consumer:DeadLetteringConsumer",
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": {},
    }
    # A tick (or relay) not started within most of its interval is dropped: stale ones never
    # pile up behind a busy or stopped worker.
    if settings.consume_mode == "tick":
        config["beat_schedule"] = {
            "link-tick": {
                "task": TICK_TASK,
                "schedule": settings.tick_interval_s,
                "options": {"queue": DEFAULT_QUEUE}
                | _dropped_after(settings, settings.tick_interval_s * 0.9),
            }
        }
    if settings.uses_outbox:
        config["beat_schedule"]["link-outbox-relay"] = {
            "task": RELAY_TASK,
            "schedule": settings.relay_interval_s,
            "options": {"queue": DEFAULT_QUEUE}
            | _dropped_after(settings, settings.relay_interval_s * 0.9),
        }
    return config


def _is_rabbitmq(broker_url: str) -> bool:
    """``amqp://``, ``amqps://`` or ``pyamqp://``: RabbitMQ."""
    return broker_url.startswith(("amqp", "pyamqp"))


def _dropped_after(settings: Settings, seconds: float) -> dict[str, float]:
    """Publish options that drop a beat message not taken within ``seconds``.

    linkmq+ and RabbitMQ: a message time-to-live (the AMQP ``expiration`` property, which
    kombu's ``Producer.publish`` takes in seconds), counted by the broker on its own clock (the
    database's for linkmq+). Not Celery's ``expires``: that is an absolute time from beat's
    host clock which the worker compares with its own, so a worker whose clock ran a second
    ahead of beat's discarded every tick as expired and processed nothing. Other brokers
    (Redis) have no per-message time-to-live: Celery's ``expires``, host clocks and all."""
    if not settings.uses_outbox or _is_rabbitmq(settings.broker_url):
        return {"expiration": seconds}
    return {"expires": seconds}
