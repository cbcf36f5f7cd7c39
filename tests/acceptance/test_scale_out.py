"""Scale-out on real RabbitMQ and Redis servers (loopback, standard ports): the application
database stays the source of truth. Workflow messages go into the outbox in the caller's
transaction and a relay publishes them; tick and worker mode both run; a relay SIGKILLed
mid-way loses nothing and no message is handled twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import kombu
import pytest
import sqlalchemy as sa
from celery import Celery

from link_message_queue.celery_config import celery_config
from link_message_queue.messages import Payload, TaskListPosition, WorkflowMessage
from link_message_queue.runtime import Runtime, build_runtime
from link_message_queue.settings import Settings

from ..databases import require_service
from .bridge_config import HANDLER, NODE
from .processes import CeleryProcess, wait_for
from .test_bridge import _handled

pytestmark = [pytest.mark.acceptance, pytest.mark.postgres]

BROKERS = {
    "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672//", 5672),
    "redis": ("redis://127.0.0.1:6379/13", 6379),
}
QUEUES = ("link_processing_queue", "celery")
LINK_MQ = "link_message_queue.cli"


@pytest.fixture(params=sorted(BROKERS))
def broker_url(request: pytest.FixtureRequest) -> str:
    url, port = BROKERS[request.param]
    require_service(request.param, port)
    with kombu.Connection(url) as connection:
        for name in QUEUES:  # nothing left from an earlier test
            with connection.SimpleQueue(name) as queue:
                queue.clear()
    return url


@pytest.fixture
def app_database_url(migrated_postgres_url: str) -> str:
    return migrated_postgres_url


@pytest.fixture
def scale_env(environment: dict[str, str], broker_url: str) -> dict[str, str]:
    engine = sa.create_engine(environment["LINK_MQ_DATABASE_URL"], poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        for table in ("linkmq_outbox", "linkmq_processed_message", "linkmq_lock"):
            connection.execute(sa.text(f"DELETE FROM {table}"))
    engine.dispose()
    return {**environment, "LINK_MQ_BROKER_URL": broker_url, "LINK_MQ_RELAY_INTERVAL": "0.2"}


def _runtime(environment: dict[str, str]) -> Runtime:
    settings = Settings.from_env(environment)
    app = Celery("scale-out-dispatch")
    app.conf.update(celery_config(settings))
    return build_runtime(app, settings)


def _dispatch(runtime: Runtime, numbers: range, *, commit: bool = True) -> None:
    """Workflow messages for the recorder, in one application transaction."""
    position = TaskListPosition.new(NODE)
    with runtime.store.engine.connect() as connection:
        for number in numbers:
            collected = WorkflowMessage.new_data_collected(
                Payload("Acceptance\\Item", {"n": number, "sleep_s": 0}), HANDLER, NODE
            )
            runtime.workflow_engine.dispatch(
                collected.prepare_data_processing(position, HANDLER), connection=connection
            )
        if commit:
            connection.commit()
        else:
            connection.rollback()


@pytest.mark.parametrize("mode", ["tick", "worker"])
def test_scale_out__outbox_relay_and_both_modes_on_a_real_broker(
    scale_env: dict[str, str], celery: Callable[..., CeleryProcess], tmp_path: Path, mode: str
) -> None:
    url = scale_env["LINK_MQ_DATABASE_URL"]
    env = {**scale_env, "LINK_MQ_CONSUME_MODE": mode, "LINK_MQ_MESSAGES_PER_TICK": "5"}
    runtime = _runtime(env)
    _dispatch(runtime, range(15))
    _dispatch(runtime, range(100, 103), commit=False)  # rolled back: never sent
    assert runtime.outbox.size() == 15  # nothing reaches the broker before the relay

    celery("worker", "-c", "2", "--without-mingle", "--without-gossip", extra_env=env)
    celery("beat", "--schedule", str(tmp_path / "beat-schedule"), extra_env=env)

    wait_for(lambda: len(_handled(url)) == 15, 90, "every committed message to be handled")
    rows = _handled(url)
    assert Counter(row.n for row in rows) == Counter(range(15))
    if mode == "tick":  # one relay in id order, one step at a time: FIFO end to end
        assert [row.n for row in rows] == list(range(15))
    assert runtime.outbox.size() == 0


def test_scale_out__a_relay_killed_mid_way_loses_nothing_and_nothing_runs_twice(
    scale_env: dict[str, str], celery: Callable[..., CeleryProcess], tmp_path: Path
) -> None:
    url = scale_env["LINK_MQ_DATABASE_URL"]
    env = {**scale_env, "LINK_MQ_CONSUME_MODE": "worker"}
    runtime = _runtime(env)
    # Five relay batches (100 rows each): the kill lands right after the first one.
    total = 500
    _dispatch(runtime, range(total))

    relay = CeleryProcess(["relay"], env, tmp_path / "relay1.log", module=LINK_MQ)
    wait_for(lambda: runtime.outbox.size() < total, 60, "the relay to publish a first batch")
    relay.kill()
    left = runtime.outbox.size()
    assert 0 < left < total, "the relay was not killed mid-way"

    again = CeleryProcess(["relay"], env, tmp_path / "relay2.log", module=LINK_MQ)
    wait_for(lambda: runtime.outbox.size() == 0, 60, "the restarted relay to empty the outbox")
    again.stop()
    celery("worker", "-c", "2", "--without-mingle", "--without-gossip", extra_env=env)
    wait_for(lambda: len(_handled(url)) == total, 120, "every message to be handled")
    assert Counter(row.n for row in _handled(url)) == Counter(range(total))
