"""The bridge on a real SQLite file and a real PostgreSQL: producer, consumer step, retries,
dead letters, worker mode, loop safety."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from celery import Celery

from link_message_queue.bridge.dead_letters import DeadLetters
from link_message_queue.bridge.errors import BridgeError, RetryLaterError
from link_message_queue.bridge.producer import enable_workflow_processor_message_queue
from link_message_queue.bridge.sources import BrokerSource
from link_message_queue.bridge.taskbody import WORKFLOW_TASK
from link_message_queue.celery_config import celery_config
from link_message_queue.db import queue_tables, read_database_now
from link_message_queue.db.locks import Locks
from link_message_queue.engine import DispatchContext
from link_message_queue.messages import (
    Payload,
    ProcessingMessage,
    TaskListPosition,
    WorkflowMessage,
    encode,
)
from link_message_queue.runtime import Runtime, WorkflowConfig, build_runtime
from link_message_queue.services import PRODUCER_SERVICE
from link_message_queue.settings import Settings
from link_message_queue.transport import (
    DEFAULT_MAX_MESSAGE_BYTES,
    PublishRefusedError,
    publish_on,
    upgrade,
)

HANDLER = "Test\\Recorder"
TYPE = "Test\\Type\\Item"
NODE = "localhost"

records = sa.Table(
    "bridge_records",
    sa.MetaData(),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
)


@dataclass
class Recorder:
    """Writes each message's ``n`` on the step's connection; fails as told by ``fail``."""

    fail: dict[int, int] = field(default_factory=dict)  # n -> attempts that fail
    seen: list[int] = field(default_factory=list)

    def handle(self, message: ProcessingMessage, context: DispatchContext) -> None:
        assert isinstance(message, WorkflowMessage)
        assert context.connection is not None
        number = message.payload.data["n"]
        self.seen.append(number)
        context.connection.execute(records.insert().values(n=number, attempt=context.attempt))
        if context.attempt <= self.fail.get(number, 0):
            raise RuntimeError(f"item {number} failed on attempt {context.attempt}")


QUEUE_CHANNELS = {
    "local": {"targets": []},
    "queue": {"targets": [HANDLER], "sender": NODE, "message_dispatcher": PRODUCER_SERVICE},
}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def runtime(database_url: str, recorder: Recorder) -> Runtime:
    settings = Settings.from_env(
        {
            "LINK_MQ_DATABASE_URL": database_url,
            "LINK_MQ_MAX_ATTEMPTS": "3",
            "LINK_MQ_RETRY_BACKOFF_S": "0.001",
            "LINK_MQ_LEASE_S": "5",
            # Tables of its own per test: the PostgreSQL database is shared by the module.
            "LINK_MQ_TABLE_PREFIX": f"t{uuid.uuid4().hex[:8]}_",
        }
    )
    app = Celery("bridge-test")
    app.conf.update(celery_config(settings))
    engine = sa.create_engine(database_url)
    upgrade(engine, settings.table_prefix)
    records.drop(engine, checkfirst=True)
    records.create(engine)
    engine.dispose()
    return build_runtime(app, settings, WorkflowConfig(QUEUE_CHANNELS, {HANDLER: recorder}, False))


def _item(number: int) -> WorkflowMessage:
    collected = WorkflowMessage.new_data_collected(Payload(TYPE, {"n": number}), HANDLER, NODE)
    return collected.prepare_data_processing(TaskListPosition.new(NODE), HANDLER)


def _recorded(runtime: Runtime) -> list[tuple[int, int]]:
    with runtime.store.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.select(records.c.n, records.c.attempt))]


def _locks(runtime: Runtime) -> Locks:
    return Locks(runtime.store.engine, runtime.store.tables.lock)


def _queued(runtime: Runtime) -> int:
    return runtime.store.messages.size(runtime.settings.queue)


def test_producer__a_queue_channel_puts_the_message_on_the_queue(
    runtime: Runtime, recorder: Recorder
) -> None:
    runtime.workflow_engine.dispatch(_item(1))

    assert recorder.seen == []
    assert _queued(runtime) == 1


def test_consumer_step__forwards_in_fifo_order_and_never_back_to_the_queue(
    runtime: Runtime, recorder: Recorder
) -> None:
    for number in range(5):
        runtime.workflow_engine.dispatch(_item(number))

    for _ in range(5):
        assert runtime.step.run(1).processed == 1

    assert recorder.seen == [0, 1, 2, 3, 4]
    assert _queued(runtime) == 0
    assert runtime.step.run(1).processed == 0  # empty queue: returns at once


def test_consumer_step__handler_writes_and_removal_commit_together(
    runtime: Runtime, recorder: Recorder
) -> None:
    recorder.fail = {7: 1}
    runtime.workflow_engine.dispatch(_item(7))

    first = runtime.step.run(1)
    assert first.retried == 1
    assert _recorded(runtime) == []  # the failed attempt's write was rolled back
    time.sleep(0.05)

    second = runtime.step.run(1)
    assert second.processed == 1
    assert _recorded(runtime) == [(7, 2)]
    assert _queued(runtime) == 0


def test_consumer_step__last_failure_moves_the_message_to_dead_letters(
    runtime: Runtime, recorder: Recorder
) -> None:
    recorder.fail = {3: 99}
    runtime.workflow_engine.dispatch(_item(3))

    outcomes = []
    for _ in range(3):
        outcomes.append(runtime.step.run(1))
        time.sleep(0.05)  # past the (1 ms, doubling) back-off

    assert [o.retried for o in outcomes] == [1, 1, 0]
    assert outcomes[-1].dead_lettered == 1
    (letter,) = runtime.dead_letters.recent()
    assert letter.reason == "failed"
    assert letter.attempts == 3
    assert letter.exception_type == "builtins.RuntimeError"
    assert "attempt 3" in letter.exception_message
    assert "Traceback" in letter.traceback
    assert _queued(runtime) == 0
    assert _recorded(runtime) == []

    recorder.fail = {}
    assert runtime.dead_letters.requeue(runtime.producer, [letter.id]) == [letter.id]
    assert runtime.dead_letters.count() == 0
    assert runtime.step.run(1).processed == 1
    assert _recorded(runtime) == [(3, 1)]


@pytest.mark.postgres
def test_dead_letters__failed_at_is_by_the_database_clock(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker whose host clock is an hour behind the database server's.
    prefix = f"d{uuid.uuid4().hex[:8]}_"
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    upgrade(engine, prefix)
    letters = DeadLetters(engine, queue_tables(prefix))
    real_time = time.time
    with monkeypatch.context() as shifted, engine.begin() as connection:
        shifted.setattr(time, "time", lambda: real_time() - 3600)
        letters.add(
            connection, queue="q", body="{}", reason="failed", error=RuntimeError("x"), attempts=1
        )
    with engine.connect() as connection:
        now = read_database_now(connection)

    (letter,) = letters.recent()
    assert now - 60 < letter.failed_at <= now  # seconds ago, not an hour
    engine.dispose()


def _dead_letter_items(runtime: Runtime, count: int) -> list[int]:
    """``count`` dead letters of ``_item(0)``…``_item(count - 1)``, in one insert; their ids."""
    table = runtime.dead_letters.table
    rows = [
        {
            "queue": runtime.settings.queue,
            "message_name": "item",
            "body": encode(_item(number)),
            "reason": "failed",
            "exception_type": "builtins.RuntimeError",
            "exception_message": f"item {number} failed",
            "traceback": "",
            "attempts": 3,
            "failed_at": time.time(),
        }
        for number in range(count)
    ]
    with runtime.store.engine.begin() as connection:
        connection.execute(sa.insert(table), rows)
        return list(connection.execute(sa.select(table.c.id).order_by(table.c.id)).scalars())


@pytest.mark.parametrize("which", ["all", "ids"])
def test_dead_letters__concurrent_requeues_queue_each_letter_exactly_once(
    runtime: Runtime, which: str
) -> None:
    # Given 300 dead letters, and two requeues of all of them started at the same moment
    ids = _dead_letter_items(runtime, 300)
    start = threading.Barrier(2)

    def requeue() -> list[int]:
        start.wait()
        try:
            return runtime.dead_letters.requeue(runtime.producer, None if which == "all" else ids)
        except LookupError:
            return []  # ids given: the other run took them (it waits, then finds them gone)

    with ThreadPoolExecutor(2) as pool:
        first, second = (future.result() for future in [pool.submit(requeue) for _ in range(2)])

    # Then the two runs took disjoint letters that add up to all of them, each queued once
    assert sorted(first + second) == ids
    assert runtime.dead_letters.count() == 0
    assert _queued(runtime) == 300
    assert runtime.step.run(1000).processed == 300
    assert sorted(_recorded(runtime)) == [(number, 1) for number in range(300)]


def _put_raw_task(
    runtime: Runtime, args: list[Any], content_type: str = "application/json"
) -> None:
    with runtime.producer.app.connection_for_write() as connection:
        producer = connection.Producer()
        body = json.dumps([args, {}, {}])
        producer.publish(
            body,
            routing_key=runtime.settings.queue,
            headers={"task": "link.workflow_message", "id": "raw"},
            content_type=content_type,
            content_encoding="utf-8",
            declare=[],
        )


@pytest.mark.parametrize(
    ("args", "content_type", "why"),
    [
        (["{not json"], "application/json", "InvalidMessageError"),
        ([json.dumps({"name": "x"})], "application/json", "InvalidMessageError"),
        (["a", "b"], "application/json", "PoisonMessageError"),
        ([encode(_item(1))], "application/x-python-serialize", "PoisonMessageError"),
    ],
)
def test_consumer_step__poison_goes_to_dead_letters_at_once(
    runtime: Runtime, args: list[Any], content_type: str, why: str
) -> None:
    _put_raw_task(runtime, args, content_type)
    runtime.workflow_engine.dispatch(_item(2))

    first = runtime.step.run(2)

    assert first.dead_lettered == 1
    assert first.processed == 1  # the queue is not blocked
    (letter,) = runtime.dead_letters.recent()
    assert letter.reason == "poison"
    assert letter.attempts == 1
    assert letter.exception_type.endswith(why)


def test_consumer_step__unknown_target_is_poison(runtime: Runtime) -> None:
    message = WorkflowMessage.collect_data_of(TYPE, NODE, "Nobody\\Home")
    runtime.producer.dispatch(message)

    result = runtime.step.run(1)

    assert result.dead_lettered == 1
    (letter,) = runtime.dead_letters.recent()
    assert "Nobody" in letter.exception_message
    assert letter.message_uuid == str(message.uuid)


def test_consumer_step__steps_do_not_overlap(runtime: Runtime) -> None:
    runtime.workflow_engine.dispatch(_item(1))
    assert _locks(runtime).try_lock("consumer_step", "someone-else", 30)

    assert runtime.step.run(1).busy is True
    assert _queued(runtime) == 1

    _locks(runtime).unlock("consumer_step", "someone-else")
    assert runtime.step.run(1).processed == 1


@dataclass
class SlowHandler:
    """Runs three times the lease; meanwhile another consumer tries to claim the message and
    another step to take the step lock (PostgreSQL: both on connections of their own)."""

    runtime: Runtime | None = None
    claimed_by_other: list[int] = field(default_factory=list)
    other_step_ran: list[bool] = field(default_factory=list)

    def handle(self, message: ProcessingMessage, context: DispatchContext) -> None:
        assert self.runtime is not None
        store, queue = self.runtime.store, self.runtime.settings.queue
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            self.claimed_by_other += [
                row.id for row in store.messages.claim(queue, "other", 1.0, 1)
            ]
            self.other_step_ran.append(
                _locks(self.runtime).try_lock("consumer_step", "other step", 1.0)
            )
            time.sleep(0.2)


def test_tick_step__a_handler_longer_than_the_lease_keeps_its_message_and_the_step_lock(
    postgres_url: str,
) -> None:
    # Given a step whose leases last 1 s (the lease keeper renews them every third of it)
    settings = Settings.from_env(
        {
            "LINK_MQ_DATABASE_URL": postgres_url,
            "LINK_MQ_LEASE_S": "1",
            "LINK_MQ_TABLE_PREFIX": f"t{uuid.uuid4().hex[:8]}_",
        }
    )
    upgrade(sa.create_engine(postgres_url, poolclass=sa.pool.NullPool), settings.table_prefix)
    app = Celery("slow")
    app.conf.update(celery_config(settings))
    slow = SlowHandler()
    slow.runtime = build_runtime(
        app, settings, WorkflowConfig(QUEUE_CHANNELS, {HANDLER: slow}, False)
    )
    slow.runtime.workflow_engine.dispatch(_item(1))

    # When its handler runs three times as long
    result = slow.runtime.step.run(1)

    # Then the message was never another consumer's, nor the lock another step's, and it is done
    assert (result.processed, result.errors) == (1, [])
    assert slow.claimed_by_other == []
    assert slow.other_step_ran
    assert not any(slow.other_step_ran)
    assert slow.runtime.store.messages.size(settings.queue) == 0


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_producer__dispatch_in_the_callers_transaction(runtime: Runtime, outcome: str) -> None:
    with runtime.store.engine.connect() as connection:
        transaction = connection.begin()
        runtime.producer.dispatch(_item(1), connection=connection)
        getattr(transaction, outcome)()

    assert _queued(runtime) == (1 if outcome == "commit" else 0)


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_producer__dispatch_many_in_the_callers_transaction(
    runtime: Runtime, recorder: Recorder, outcome: str
) -> None:
    # The app defines the workflow task (as celery_app's does): send_many's one write. Once
    # celery_app is imported (by an earlier test), its shared task joins every app on
    # finalize; this app's own definition replaces it instead of warning of a duplicate.
    app = runtime.producer.app
    app.tasks.pop(WORKFLOW_TASK, None)
    app.task(name=WORKFLOW_TASK, shared=False)(_workflow_task)
    with runtime.store.engine.connect() as connection:
        transaction = connection.begin()
        runtime.producer.dispatch_many([_item(number) for number in range(5)], connection)
        getattr(transaction, outcome)()

    if outcome == "rollback":
        assert _queued(runtime) == 0
        return
    assert _queued(runtime) == 5
    # … consumed as dispatch()'s messages are, in order
    for _ in range(5):
        assert runtime.step.run(1).processed == 1
    assert recorder.seen == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("path", ["send_many", "send_task"])
def test_producer__dispatch_many_that_raises_queues_none_of_its_messages(
    runtime: Runtime, path: str
) -> None:
    # send_many when the app defines the workflow task, else one send_task each
    app = runtime.producer.app
    app.tasks.pop(WORKFLOW_TASK, None)
    if path == "send_many":
        app.task(name=WORKFLOW_TASK, shared=False)(_workflow_task)
    # The third message is over the transport's size limit: the channel refuses it
    messages = [_item(0), _item(1), _too_big(), _item(3)]
    with runtime.store.engine.connect() as connection:
        transaction = connection.begin()
        # The caller catches the error and commits
        with pytest.raises(PublishRefusedError, match="max_message_bytes"):
            runtime.producer.dispatch_many(messages, connection)
        transaction.commit()

    assert _queued(runtime) == 0


def test_producer__dispatch_many_through_the_outbox_that_raises_stores_none(
    database_url: str,
) -> None:
    settings = Settings.from_env(
        {
            "LINK_MQ_DATABASE_URL": database_url,
            "LINK_MQ_BROKER_URL": "redis://localhost/0",
            "LINK_MQ_TABLE_PREFIX": f"t{uuid.uuid4().hex[:8]}_",
        }
    )
    engine = sa.create_engine(database_url)
    upgrade(engine, settings.table_prefix)
    engine.dispose()
    runtime = build_runtime(Celery("outbox"), settings, WorkflowConfig({}, {}, False))
    assert runtime.outbox is not None
    with runtime.store.engine.connect() as connection:
        transaction = connection.begin()
        # The caller catches the refusal of the third message and commits
        with pytest.raises(PublishRefusedError, match="over the limit"):
            runtime.producer.dispatch_many([_item(0), _item(1), _too_big(), _item(3)], connection)
        transaction.commit()
    assert runtime.outbox.oldest(10) == []


def _too_big() -> WorkflowMessage:
    """A workflow message over the transport's size limit."""
    padding = "x" * (DEFAULT_MAX_MESSAGE_BYTES + 1)
    collected = WorkflowMessage.new_data_collected(Payload(TYPE, {"pad": padding}), HANDLER, NODE)
    return collected.prepare_data_processing(TaskListPosition.new(NODE), HANDLER)


def _workflow_task(body: str) -> None:
    raise AssertionError("consumed by the consumer step here")


def test_worker_consumer__retries_then_dead_letters_and_skips_duplicates(
    runtime: Runtime, recorder: Recorder
) -> None:
    recorder.fail = {5: 1}
    body = encode(_item(5))

    with pytest.raises(RetryLaterError):
        runtime.worker.handle(body, attempts=1)
    assert runtime.worker.handle(body, attempts=2) == "processed"
    assert runtime.worker.handle(body, attempts=3) == "duplicate"
    assert _recorded(runtime) == [(5, 2)]

    recorder.fail = {6: 99}
    assert runtime.worker.handle(encode(_item(6)), attempts=3) == "dead_lettered"
    assert runtime.worker.handle("{broken", attempts=1) == "dead_lettered"
    assert [letter.reason for letter in runtime.dead_letters.recent()] == ["failed", "poison"]


def test_enable_workflow_processor_message_queue__adds_a_sender_filtered_channel() -> None:
    channels = enable_workflow_processor_message_queue({"local": {"targets": []}}, "node-1")

    assert channels["workflow_processor_message_queue"] == {
        "targets": ["*"],
        "sender": "node-1",
        "message_dispatcher": "link.app.workflow_processor_message_queue",
    }
    with pytest.raises(BridgeError, match="exists already"):
        enable_workflow_processor_message_queue(channels, "node-1")


def test_runtime__another_broker_goes_through_the_outbox_and_ticks_read_the_broker(
    database_url: str,
) -> None:
    settings = Settings.from_env(
        {"LINK_MQ_DATABASE_URL": database_url, "LINK_MQ_BROKER_URL": "redis://localhost/0"}
    )
    runtime = build_runtime(Celery("x"), settings, WorkflowConfig({}, {}, False))
    assert isinstance(runtime.step.source, BrokerSource)
    assert runtime.producer.outbox is runtime.outbox
    assert runtime.producer.transactional


def test_runtime__the_relays_lock_lasts_the_lease(database_url: str) -> None:
    # A relay killed while it holds the lock stops the next one for that long (it was 30 s
    # whatever the lease).
    settings = Settings.from_env(
        {
            "LINK_MQ_DATABASE_URL": database_url,
            "LINK_MQ_BROKER_URL": "redis://localhost/0",
            "LINK_MQ_LEASE_S": "2.5",
        }
    )
    runtime = build_runtime(Celery("x"), settings, WorkflowConfig({}, {}, False))
    assert runtime.relay.lock_s == 2.5


def test_publish_on__works_with_a_session(runtime: Runtime) -> None:
    from sqlalchemy.orm import Session

    with Session(runtime.store.engine) as session:
        with publish_on(session):
            runtime.producer._send(encode(_item(9)))
        session.commit()
    assert _queued(runtime) == 1


def test_ticks__registered_listeners_hear_every_tick(database_url: str) -> None:
    from link_message_queue.messages import TickOccurred

    heard: list[TickOccurred] = []

    class Listener:
        def on_tick(self, tick: TickOccurred) -> None:
            heard.append(tick)

    settings = Settings.from_env(
        {"LINK_MQ_DATABASE_URL": database_url, "LINK_MQ_TABLE_PREFIX": f"t{uuid.uuid4().hex[:8]}_"}
    )
    upgrade(sa.create_engine(database_url, poolclass=sa.pool.NullPool), settings.table_prefix)
    config = WorkflowConfig({}, {"my.listener": Listener()}, False, ("my.listener",))
    runtime = build_runtime(Celery("ticks"), settings, config)

    tick = TickOccurred()
    runtime.ticks.publish(tick)

    assert heard == [tick]
    assert runtime.step_listener.last_result.processed == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("which", ["all", "ids"])
def test_dead_letters__requeue_of_more_letters_than_sqlite_takes_parameters(
    runtime: Runtime, which: str
) -> None:
    # Given a SQLite that allows 999 variables a statement (before 3.32) and 1,200 dead letters
    engine = runtime.store.engine

    @sa.event.listens_for(engine, "connect")
    def _old_limit(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

    engine.dispose()
    ids = _dead_letter_items(runtime, 1200)
    # When all are requeued, Then each is queued once and none is left
    requeued = runtime.dead_letters.requeue(runtime.producer, None if which == "all" else ids)
    assert requeued == ids
    assert runtime.dead_letters.count() == 0
    assert _queued(runtime) == 1200
