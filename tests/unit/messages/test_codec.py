"""The JSON codec: PHP-produced rows, round trips of every kind, and errors that name the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from link_message_queue.messages import (
    InvalidMessageError,
    LogMessage,
    StartSubProcess,
    SubProcessFinished,
    TickOccurred,
    WorkflowMessage,
    WorkflowStep,
    decode,
    decode_processing_message,
    encode,
)

from .strategies import any_message

PROCESS_ID = "3e8e4ba6-6c2c-4b8e-9b8a-6d0f3f2a1c11"
TASK_LIST_ID = "a1b2c3d4-0000-4000-8000-123456789abc"
POSITION = f"localhost:PROCESS_ID:{PROCESS_ID}:TASK_LIST_ID:{TASK_LIST_ID}:TASK_POSITION:1"

# A bernard row as PHP stored it (reference §2.2): compact, `/` escaped as `\/`, `\` doubled,
# JSON inside JSON, second precision with a +0200 offset, PHP's [] for empty metadata.
PHP_COLLECT_DATA_ROW = (
    r'{"message":{"name":"processing-message-proophprocessingexampletypesourceuser-collect-data",'
    r'"header":{"uuid":"9a1e0c3e-5d0b-4c4e-8f1a-2b3c4d5e6f70","created_at":"2015-05-10T13:44:15+0200",'
    r'"version":1,"type":"command","metadata":[]},'
    r'"payload":{"json":"{\"typeClass\":\"Prooph\\\\ProcessingExample\\\\Type\\\\SourceUser\",\"data\":null}",'
    r'"metadata":[],"origin":"localhost",'
    r'"target":"Prooph\\ProcessingExample\\Plugin\\UserDataProvider",'
    r'"processTaskListPosition":"' + POSITION + r'"}},"timestamp":1431258255}'
)


def test_codec__reads_php_collect_data_row() -> None:
    message = decode(PHP_COLLECT_DATA_ROW)

    assert isinstance(message, WorkflowMessage)
    assert message.step is WorkflowStep.COLLECT_DATA
    assert message.payload.type_class == "Prooph\\ProcessingExample\\Type\\SourceUser"
    assert message.payload.data is None
    assert message.target == "Prooph\\ProcessingExample\\Plugin\\UserDataProvider"
    assert message.origin == "localhost"
    assert message.metadata == {}
    assert message.uuid == UUID("9a1e0c3e-5d0b-4c4e-8f1a-2b3c4d5e6f70")
    assert message.created_at == datetime(2015, 5, 10, 11, 44, 15, tzinfo=UTC)
    assert message.process_task_list_position is not None
    assert str(message.process_task_list_position) == POSITION


def test_codec__reads_php_data_collected_with_associative_metadata() -> None:
    row = {
        "name": "processing-message-acmeusercollection-data-collected",
        "header": {
            "uuid": "0b5c1f4e-7f3b-4a53-9a4e-8c1d2e3f4a5b",
            "created_at": "2015-05-10T13:44:16-0130",
            "version": 2,
            "type": "event",
            "metadata": [],
        },
        "payload": {
            "json": json.dumps(
                {"typeClass": "Acme\\UserCollection", "data": [{"name": "Ada", "age": 36}]}
            ),
            "metadata": {"offset": 0, "limit": 100, "tags": ["a", "b"], "nested": []},
            "origin": "Acme\\UserSource",
            "target": "localhost",
        },
    }

    message = decode(json.dumps(row))

    assert isinstance(message, WorkflowMessage)
    assert message.step is WorkflowStep.DATA_COLLECTED
    assert message.version == 2
    assert message.payload.data == [{"name": "Ada", "age": 36}]
    # Only the top level is known to be a map; a nested PHP [] stays an (empty) list.
    assert message.metadata == {"offset": 0, "limit": 100, "tags": ["a", "b"], "nested": []}
    assert message.created_at.utcoffset() == -timedelta(hours=1, minutes=30)
    assert message.process_task_list_position is None


def test_codec__reads_old_created_on_header() -> None:
    row = json.loads(PHP_COLLECT_DATA_ROW)["message"]
    row["header"]["createdOn"] = row["header"].pop("created_at")

    message = decode(row)

    assert message.created_at == datetime(2015, 5, 10, 11, 44, 15, tzinfo=UTC)


def test_codec__reads_php_log_message() -> None:
    row = {
        "name": "processing-log-message",
        "header": {
            "uuid": "0b5c1f4e-7f3b-4a53-9a4e-8c1d2e3f4a5b",
            "created_at": "2015-05-10T13:44:16+0200",
            "version": 1,
            "type": "event",
            "metadata": [],
        },
        "payload": {
            "origin": "Acme\\UserSource",
            "processTaskListPosition": POSITION,
            "technicalMsg": "Connection refused",
            "msgParams": [],
            "msgCode": 500,
        },
    }

    message = decode(row)

    assert isinstance(message, LogMessage)
    assert message.is_error
    assert message.target == "localhost"
    assert message.msg_params == {}


def test_codec__emits_utc_iso8601_with_microseconds() -> None:
    message = WorkflowMessage.collect_data_of("Acme\\User", "localhost", "Acme\\Source")
    created = datetime(2015, 5, 10, 13, 44, 15, 123, tzinfo=timezone(timedelta(hours=2)))
    message = WorkflowMessage(**{**message.__dict__, "created_at": created})

    data = json.loads(encode(message))

    assert data["header"]["created_at"] == "2015-05-10T11:44:15.000123+00:00"
    assert data["header"]["type"] == "command"
    assert data["header"]["metadata"] == {}
    assert json.loads(data["payload"]["json"]) == {"typeClass": "Acme\\User", "data": None}
    assert "processTaskListPosition" not in data["payload"]


def test_codec__tick_occurred_has_link_name_and_empty_payload() -> None:
    data = json.loads(encode(TickOccurred()))

    assert data["name"] == "Prooph\\Link\\Application\\Event\\TickOccurred"
    assert data["payload"] == {}
    assert data["header"]["type"] == "event"
    assert isinstance(decode(data), TickOccurred)


@given(any_message)
def test_codec__round_trips_every_message_kind(message: Any) -> None:
    assert decode(encode(message)) == message


@given(any_message)
def test_codec__round_trip_is_stable_text(message: Any) -> None:
    text = encode(message)

    assert encode(decode(text)) == text


def test_codec__sub_process_messages_nest_their_messages() -> None:
    collect = decode(PHP_COLLECT_DATA_ROW)
    assert isinstance(collect, WorkflowMessage)
    position = collect.process_task_list_position
    assert position is not None
    start = StartSubProcess(
        position, {"process_type": "linear_messaging"}, "subnode", True, collect
    )
    finished = SubProcessFinished("subnode", position, collect.uuid, True, collect)

    assert decode(encode(start)) == start
    assert decode(encode(finished)) == finished
    assert start.origin == "localhost"
    assert finished.target == "localhost"


def _row() -> dict[str, Any]:
    row: dict[str, Any] = json.loads(PHP_COLLECT_DATA_ROW)["message"]
    return row


def _set(path: str, value: object) -> dict[str, Any]:
    row = _row()
    *parents, last = path.split(".")
    node = row
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return row


_DELETE = object()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("{not json", "body"),
        (b"\xff\xfe", "body"),
        ('{"name": NaN}', "body"),
        ("[]", "name"),
        ("42", "message"),
        (_set("name", _DELETE), "name"),
        (_set("name", ""), "name"),
        (_set("name", "processing-message-x-collect-everything"), "name"),
        (_set("name", "something-else"), "name"),
        (_set("header", _DELETE), "header"),
        (_set("header", "x"), "header"),
        (_set("header.uuid", "not-a-uuid"), "header.uuid"),
        (_set("header.uuid", 7), "header.uuid"),
        (_set("header.created_at", _DELETE), "header.created_at"),
        (_set("header.created_at", "yesterday"), "header.created_at"),
        (_set("header.created_at", "2015-05-10T13:44:15"), "header.created_at"),
        (_set("header.version", "1"), "header.version"),
        (_set("header.version", 0), "header.version"),
        (_set("header.type", "query"), "header.type"),
        (_set("header.type", ["command"]), "header.type"),
        (_set("payload", _DELETE), "payload"),
        (_set("payload", "x"), "payload"),
        (_set("payload.json", _DELETE), "payload.json"),
        (_set("payload.json", {"typeClass": "A"}), "payload.json"),
        (_set("payload.json", "{broken"), "payload.json"),
        (_set("payload.json", '{"data": 1}'), "payload.json.typeClass"),
        (_set("payload.origin", _DELETE), "payload.origin"),
        (_set("payload.target", ""), "payload.target"),
        (_set("payload.metadata", "x"), "payload.metadata"),
        (_set("payload.metadata", {"a": None}), "payload.metadata.a"),
        (_set("payload.metadata", {"a": [{"b": None}]}), "payload.metadata.a.0.b"),
        (_set("payload.processTaskListPosition", "nowhere"), "payload.processTaskListPosition"),
    ],
)
def test_codec__bad_input_names_the_field(raw: Any, field: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        decode(raw if isinstance(raw, str | bytes) else json.dumps(raw))

    assert caught.value.field == field


def test_codec__bad_nested_message_names_the_nested_field() -> None:
    collect = decode(PHP_COLLECT_DATA_ROW)
    assert isinstance(collect, WorkflowMessage)
    assert collect.process_task_list_position is not None
    finished = json.loads(
        encode(
            SubProcessFinished(
                "subnode", collect.process_task_list_position, collect.uuid, True, collect
            )
        )
    )
    finished["payload"]["last_message"]["header"]["uuid"] = "nope"

    with pytest.raises(InvalidMessageError) as caught:
        decode(finished)

    assert caught.value.field == "payload.last_message.header.uuid"


def test_codec__tick_is_not_a_processing_message() -> None:
    with pytest.raises(InvalidMessageError, match="TickOccurred"):
        decode_processing_message(encode(TickOccurred()))


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.one_of(
        json_documents,
        st.fixed_dictionaries(
            {"name": st.text(), "header": json_documents, "payload": json_documents}
        ),
    )
)
def test_codec__arbitrary_json_decodes_or_raises_invalid_message(document: Any) -> None:
    outcome = _decode_or_error(json.dumps(document))

    assert not isinstance(outcome, InvalidMessageError) or outcome.field


def _decode_or_error(text: str) -> object:
    try:
        return decode(text)
    except InvalidMessageError as error:
        return error
