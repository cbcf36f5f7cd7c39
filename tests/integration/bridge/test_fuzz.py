"""Fuzzing the consumer (hypothesis): malformed rows, envelopes, headers, task bodies and
workflow messages are thrown at a real consumer step on a real SQLite file. Nothing crashes,
nothing is lost: each message is either handled or in dead letters with its reason."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from celery import Celery
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from link_message_queue.bridge.errors import PoisonMessageError
from link_message_queue.bridge.taskbody import workflow_body
from link_message_queue.celery_config import celery_config
from link_message_queue.engine import DispatchContext
from link_message_queue.messages import (
    Payload,
    ProcessingMessage,
    TaskListPosition,
    WorkflowMessage,
    decode_processing_message,
    encode,
)
from link_message_queue.runtime import Runtime, WorkflowConfig, build_runtime
from link_message_queue.settings import Settings
from link_message_queue.transport import EnvelopeError, upgrade
from link_message_queue.transport.envelope import body_of, decode

HANDLER = "Fuzz\\Sink"
NODE = "localhost"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


class Sink:
    def __init__(self) -> None:
        self.handled = 0

    def handle(self, message: ProcessingMessage, context: DispatchContext) -> None:
        self.handled += 1


def _valid_workflow_body() -> str:
    collected = WorkflowMessage.new_data_collected(Payload("Fuzz\\Item", {"n": 1}), HANDLER, NODE)
    return encode(collected.prepare_data_processing(TaskListPosition.new(NODE), HANDLER))


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> tuple[Runtime, dict[str, Any], Sink]:
    database_url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.sqlite3'}"
    settings = Settings.from_env(
        {
            "LINK_MQ_DATABASE_URL": database_url,
            "LINK_MQ_MAX_ATTEMPTS": "1",  # every failure is final: nothing waits for a retry
            "LINK_MQ_TABLE_PREFIX": f"f{uuid.uuid4().hex[:6]}_",
        }
    )
    upgrade(sa.create_engine(database_url, poolclass=sa.pool.NullPool), settings.table_prefix)
    app = Celery("fuzz")
    app.conf.update(celery_config(settings))
    sink = Sink()
    runtime = build_runtime(
        app, settings, WorkflowConfig({"local": {"targets": [HANDLER]}}, {HANDLER: sink}, False)
    )
    # A real queued row, as the producer writes it: the template the strategies mutate.
    runtime.producer.dispatch(decode_processing_message(_valid_workflow_body()))
    with runtime.store.engine.connect() as connection:
        payload = connection.execute(sa.select(runtime.store.tables.message.c.payload)).scalar_one()
    runtime.store.messages.purge(settings.queue)
    return runtime, json.loads(payload), sink


def _task_body(workflow_body: Any) -> str:
    return json.dumps([[workflow_body], {}, {"callbacks": None, "errbacks": None}])


@st.composite
def rows(draw: st.DrawFn, template: dict[str, Any]) -> str:
    """A queued row's payload, broken somewhere (or, now and then, intact)."""
    kind = draw(st.sampled_from(["text", "json", "envelope", "headers", "task_body", "workflow"]))
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values))
    envelope = json.loads(json.dumps(template))
    if kind == "envelope":
        key = draw(st.sampled_from(["body", "content-type", "properties", "headers"]))
        envelope[key] = draw(json_values | st.sampled_from(["application/x-python-serialize"]))
    elif kind == "headers":
        envelope["headers"] = {**envelope["headers"], "task": draw(st.text(max_size=30))}
    elif kind == "task_body":
        envelope["properties"]["body_encoding"] = "utf-8"
        envelope["body"] = draw(st.text(max_size=100) | json_values.map(json.dumps))
    else:
        valid = json.loads(_valid_workflow_body())
        broken = draw(_broken_workflow(valid))
        envelope["properties"]["body_encoding"] = "utf-8"
        envelope["body"] = _task_body(broken)
    return json.dumps(envelope)


@st.composite
def _broken_workflow(draw: st.DrawFn, valid: dict[str, Any]) -> str:
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return draw(st.text(max_size=100))
    if choice == 1:
        return json.dumps(draw(json_values))
    # One field of a valid message replaced, possibly deep inside the payload.
    message = json.loads(json.dumps(valid))
    target = message
    key = draw(st.sampled_from(sorted(message)))
    if isinstance(target[key], dict) and target[key]:
        target = target[key]
        key = draw(st.sampled_from(sorted(target)))
    target[key] = draw(json_values)
    return json.dumps(message)


def _inner_or_none(payload: str) -> str | None:
    try:
        envelope = decode(payload)
        headers = envelope.get("headers")
        task = headers.get("task") if isinstance(headers, dict) else None
        return workflow_body(task, envelope.get("content-type"), body_of(envelope))
    except (PoisonMessageError, EnvelopeError):
        return None


def test_fuzz__malformed_messages_never_crash_the_consumer_nor_get_lost(
    fuzz: tuple[Runtime, dict[str, Any], Sink],
) -> None:
    runtime, template, sink = fuzz
    queue = runtime.settings.queue

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(payload=rows(template))
    def throw(payload: str) -> None:
        dead_before = runtime.dead_letters.count()
        handled_before = sink.handled
        runtime.store.messages.put(queue, payload, 0, None)
        result = runtime.step.run(1)  # never raises
        assert runtime.store.messages.size(queue) == 0, (
            "the message is still (or again) on the queue"
        )
        assert result.processed + result.dead_lettered == 1, result
        if result.dead_lettered:
            assert runtime.dead_letters.count() == dead_before + 1
            (letter,) = runtime.dead_letters.recent(limit=1)  # the latest
            assert letter.reason in {"poison", "failed"}
            assert letter.exception_type
            assert letter.exception_message
            # The message itself is kept, to be read or requeued: the row as queued, or the
            # workflow message inside it when the envelope could be read.
            assert letter.body in {payload, _inner_or_none(payload)}
        else:
            assert sink.handled == handled_before + 1

    throw()
    # The intact template is handled: the fuzzing did not just break the consumer for good.
    runtime.store.messages.put(queue, json.dumps(template), 0, None)
    assert runtime.step.run(1).processed == 1
