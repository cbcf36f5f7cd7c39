"""The Celery app of link-message-queue: ``celery -A link_message_queue.celery_app worker``.

Configured from the top-level ``celeryconfig.py`` when it can be imported (it reads the
environment), else from the same LINK_MQ_* settings directly. The tasks are thin wrappers over
the bridge."""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

from celery import Celery, signals

from .bridge.errors import BridgeError, RetryLaterError
from .bridge.taskbody import RELAY_TASK, TICK_TASK, WORKFLOW_TASK
from .bridge.ticks import TICK_EMITTED_AT_HEADER, stamp_emission, tick_emitted
from .celery_config import celery_config
from .db import DriverMissingError, TransportOptionError, after_fork_in_child, require_driver
from .engine import EngineError
from .monitoring.task_events import GroupedTaskEvents
from .processor.errors import ProcessorError
from .runtime import Runtime, build_runtime
from .services import ServiceError
from .settings import Settings, SettingsError, linkmq_database_url

logger = logging.getLogger(__name__)

app = Celery("link_message_queue")
_config_module = os.environ.get("CELERY_CONFIG_MODULE", "celeryconfig")
if importlib.util.find_spec(_config_module) is not None:
    app.config_from_object(_config_module)
else:
    app.conf.update(celery_config(Settings.from_env()))
# Task events (celery worker -E) in groups: one message per group of events instead of one per
# event, and far less work in the worker's main process.
app.steps["consumer"].add(GroupedTaskEvents)


@signals.celeryd_init.connect
def _require_database_drivers(**_: Any) -> None:
    """Before the worker opens its broker connection: a database driver that is not installed,
    or a database URL SQLAlchemy has no dialect for, ends start-up with what to do, instead of
    a traceback from inside kombu."""
    try:
        urls = [Settings.from_env().database_url]
        # The broker as Celery has it: `celery -b …` overrides the settings' URL.
        broker_database = linkmq_database_url(str(app.conf.broker_url or ""))
        if broker_database is not None:
            urls.append(broker_database)
        for url in urls:
            require_driver(url)
    # SystemExit: Celery's signal dispatch logs and swallows any other exception, and the
    # worker went on to retry a broker it could never reach.
    except (DriverMissingError, TransportOptionError, SettingsError) as exc:
        raise SystemExit(f"link-mq worker: {exc}") from None


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """This process's runtime, built on first use (and again in a forked child)."""
    global _runtime  # noqa: PLW0603 - one runtime per process by design
    if _runtime is None:
        _runtime = build_runtime(app, Settings.from_env())
    return _runtime


def _forget_runtime() -> None:
    global _runtime  # noqa: PLW0603 - see runtime()
    _runtime = None


# A forked child (a prefork pool process) builds its own runtime: new owner ids, its own
# consumer step and connections (db.database is where fork-safety lives).
after_fork_in_child(_forget_runtime)


@signals.worker_init.connect
@signals.beat_init.connect
def check_config(sender: Any = None, **_: Any) -> None:
    """Build this process's runtime as a worker or beat starts, so a config that cannot work (a
    misspelled ``LINK_MQ_CONFIG`` module, a name in it that leads nowhere) stops start-up with
    one message instead of a traceback on every tick. SystemExit, as Celery's signal dispatch
    would log and swallow any other exception."""
    if getattr(sender, "app", None) is not app:
        return  # another app's worker or beat in this process
    try:
        runtime()
    except (BridgeError, EngineError, ServiceError, ProcessorError, SettingsError) as exc:
        raise SystemExit(f"link-mq: cannot start: {exc}") from exc


@signals.worker_ready.connect
def warn_without_config(sender: Any = None, **_: Any) -> None:
    """A worker started without ``LINK_MQ_CONFIG`` (an export forgotten in a new terminal)
    has none of the application's channels or services: each workflow message for one of its
    targets would be dead-lettered ("no service is registered as …"). Say so once, at
    WARNING, as the worker comes up (Celery's logging is set up by then)."""
    if getattr(sender, "app", None) is not app:
        return  # another app's worker in this process
    if runtime().settings.config_module is None:
        logger.warning(
            "link-mq: LINK_MQ_CONFIG is not set: none of your application's channels or "
            "services are registered, so a workflow message for one of your targets will be "
            "dead-lettered; export LINK_MQ_CONFIG=<your config module> and restart the worker"
        )


@signals.before_task_publish.connect
def _stamp_tick_emission(
    sender: str | None = None, headers: dict[str, Any] | None = None, **_: Any
) -> None:
    """Celery beat stamps each tick it sends with its emission time: the tick lag metric
    measures from there, with no setting to add."""
    if sender == TICK_TASK and headers is not None:
        stamp_emission(headers)


@app.task(name=TICK_TASK, bind=True, ignore_result=True)
def tick_occurred(self: Any) -> dict[str, Any]:
    """Publish a TickOccurred to the tick listeners: the built-in one runs a consumer step."""
    current = runtime()
    current.ticks.publish(tick_emitted(self.request.get(TICK_EMITTED_AT_HEADER)))
    return current.step_listener.last_result.as_dict()


@app.task(name=RELAY_TASK, ignore_result=True)
def outbox_relay() -> int:
    """RabbitMQ/Redis brokers: publish what the outbox holds (one relay at a time)."""
    return runtime().relay.run_once()


# max_retries=None on the task: the bridge's RetryPolicy (LINK_MQ_MAX_ATTEMPTS) alone decides
# when a message gives up and becomes a dead letter. Task.retry(max_retries=None) would mean
# "the task's limit", Celery's default 3, which ended the 4th attempt acked and lost.
@app.task(name=WORKFLOW_TASK, bind=True, ignore_result=True, max_retries=None)
def workflow_message(self: Any, body: str) -> str:
    """Worker mode: forward one workflow message to the workflow engine."""
    try:
        return runtime().worker.handle(body, attempts=self.request.retries + 1)
    except RetryLaterError as retry:
        raise self.retry(countdown=retry.delay_s, exc=retry.cause) from retry
