"""Hypothesis strategies for every message kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from link_message_queue.messages import (
    LogMessage,
    Payload,
    StartSubProcess,
    SubProcessFinished,
    TaskListPosition,
    TickOccurred,
    WorkflowMessage,
    WorkflowStep,
)
from link_message_queue.messages.names import workflow_message_name

text = st.text(min_size=1, max_size=20)
node_names = st.text(min_size=3, max_size=12).filter(lambda s: ":" not in s)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
metadata_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
metadata = st.dictionaries(st.text(max_size=8), metadata_values, max_size=4)
json_values = st.recursive(
    st.none() | scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
) | st.builds(
    lambda dt, minutes: dt.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(min_value=-12 * 60, max_value=14 * 60),
)
type_classes = st.from_regex(r"\A[A-Z][a-z]{1,6}(\\[A-Z][a-z]{1,6}){0,3}\Z")
positions = st.builds(
    TaskListPosition, node_names, st.uuids(version=4), st.uuids(version=4), st.integers(1, 50)
)


@st.composite
def workflow_messages(draw: st.DrawFn) -> WorkflowMessage:
    type_class = draw(type_classes)
    step = draw(st.sampled_from(list(WorkflowStep)))
    return WorkflowMessage(
        name=workflow_message_name(type_class, step),
        origin=draw(text),
        target=draw(text),
        payload=Payload(type_class, draw(json_values)),
        uuid=draw(st.uuids(version=4)),
        version=draw(st.integers(1, 1000)),
        created_at=draw(timestamps),
        metadata=draw(metadata),
        process_task_list_position=draw(st.none() | positions),
    )


log_messages = st.builds(
    LogMessage,
    origin=text,
    process_task_list_position=positions,
    technical_msg=st.text(max_size=30),
    msg_code=st.sampled_from([0, 100, 202, 412, 415, 416, 500, 501]),
    msg_params=metadata,
    uuid=st.uuids(version=4),
    created_at=timestamps,
)
start_sub_processes = st.builds(
    StartSubProcess,
    parent_task_list_position=positions,
    sub_process_definition=st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    target=node_names,
    sync_log_messages=st.booleans(),
    previous_message=st.none() | workflow_messages() | log_messages,
    uuid=st.uuids(version=4),
    version=st.integers(1, 10),
    created_at=timestamps,
)
sub_processes_finished = st.builds(
    SubProcessFinished,
    processor_node_name=node_names,
    parent_task_list_position=positions,
    sub_process_id=st.uuids(version=4),
    succeed=st.booleans(),
    last_message=workflow_messages() | log_messages,
    uuid=st.uuids(version=4),
    version=st.integers(1, 10),
    created_at=timestamps,
)
ticks = st.builds(TickOccurred, uuid=st.uuids(version=4), created_at=timestamps)
any_message = st.one_of(
    workflow_messages(), log_messages, start_sub_processes, sub_processes_finished, ticks
)
