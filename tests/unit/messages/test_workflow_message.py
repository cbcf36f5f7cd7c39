"""WorkflowMessage transformations, metadata merging, log messages."""

from __future__ import annotations

import pytest

from link_message_queue.messages import (
    InvalidMessageError,
    LogCode,
    LogLevel,
    LogMessage,
    Payload,
    TaskListPosition,
    WorkflowMessage,
    WorkflowStep,
    WorkflowTransitionError,
    merge_metadata,
    normalize_type,
)

USER = "Prooph\\ProcessingExample\\Type\\SourceUser"


def _collect(metadata: dict[str, object] | None = None) -> WorkflowMessage:
    message = WorkflowMessage.collect_data_of(USER, "localhost", "Acme\\Source", metadata)  # type: ignore[arg-type]
    return message.connect_to_process_task(TaskListPosition.new("localhost"))


def test_names__normalize_type_like_php() -> None:
    assert normalize_type(USER) == "proophprocessingexampletypesourceuser"
    assert normalize_type("processing-message-Acme/Some Type-x") == "acmesometypex"


def test_workflow_message__collect_data_is_a_command_named_after_the_type() -> None:
    message = _collect()

    assert message.name == "processing-message-proophprocessingexampletypesourceuser-collect-data"
    assert message.step is WorkflowStep.COLLECT_DATA
    assert message.version == 1


def test_workflow_message__answer_with_swaps_origin_and_target_and_bumps_version() -> None:
    collect = _collect({"limit": 10})

    answer = collect.answer_with(Payload(USER, {"name": "Ada"}), {"offset": 0})

    assert answer.step is WorkflowStep.DATA_COLLECTED
    assert (answer.origin, answer.target) == (collect.target, collect.origin)
    assert answer.version == collect.version + 1
    assert answer.uuid != collect.uuid
    assert answer.created_at >= collect.created_at
    assert answer.metadata == {"limit": 10, "offset": 0}
    assert answer.process_task_list_position == collect.process_task_list_position


def test_workflow_message__answer_with_another_type_is_refused() -> None:
    with pytest.raises(WorkflowTransitionError, match="asked for"):
        _collect().answer_with(Payload("Acme\\Other"))


def test_workflow_message__full_cycle() -> None:
    collected = _collect().answer_with(Payload(USER, {"name": "Ada"}))
    position = TaskListPosition.new("localhost", position=2)

    process = collected.prepare_data_processing(position, "Acme\\Target")
    processed = process.answer_with_data_processing_completed({"done": True})

    assert process.step is WorkflowStep.PROCESS_DATA
    assert (process.origin, process.target) == (collected.target, "Acme\\Target")
    assert process.process_task_list_position == position
    assert processed.step is WorkflowStep.DATA_PROCESSED
    assert (processed.origin, processed.target) == ("Acme\\Target", process.origin)
    assert processed.version == 4
    assert processed.payload.data == {"name": "Ada"}


@pytest.mark.parametrize(
    "action",
    [
        lambda m: m.prepare_data_processing(TaskListPosition.new("localhost"), "x"),
        lambda m: m.answer_with_data_processing_completed(),
    ],
)
def test_workflow_message__transformation_from_wrong_step_is_refused(action: object) -> None:
    with pytest.raises(WorkflowTransitionError):
        action(_collect())  # type: ignore[operator]


def test_workflow_message__connects_to_a_task_only_once() -> None:
    message = _collect()
    other = TaskListPosition.new("localhost")

    with pytest.raises(WorkflowTransitionError, match="already connected"):
        message.connect_to_process_task(other)
    reconnected = message.reconnect_to_process_task(other)
    assert reconnected.process_task_list_position == other
    assert reconnected.uuid != message.uuid
    assert reconnected.version == message.version


def test_workflow_message__change_processing_type_renames() -> None:
    changed = _collect().change_processing_type("Acme\\Product")

    assert changed.name == "processing-message-acmeproduct-collect-data"
    assert changed.payload.type_class == "Acme\\Product"


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"a": None}, "metadata.a"),
        ({"a": float("nan")}, "metadata.a"),
        ({"a": object()}, "metadata.a"),
        ({1: "x"}, "metadata"),
    ],
)
def test_workflow_message__metadata_allows_nested_scalars_only(
    metadata: dict[object, object], field: str
) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        WorkflowMessage.collect_data_of(USER, "a", "b", metadata)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_metadata__merge_is_recursive_and_appends_lists() -> None:
    base = {"a": {"x": 1, "y": [1]}, "tags": ["a"], "keep": True}
    update = {"a": {"y": [2], "z": "new"}, "tags": ["b"], "keep": False}

    merged = merge_metadata(base, update)  # type: ignore[arg-type]

    assert merged == {"a": {"x": 1, "y": [1, 2], "z": "new"}, "tags": ["a", "b"], "keep": False}
    assert base["tags"] == ["a"]


def test_payload__must_be_json() -> None:
    with pytest.raises(InvalidMessageError, match="data"):
        Payload(USER, {"when": object()})


@pytest.mark.parametrize(
    ("code", "level"),
    [
        (0, LogLevel.DEBUG),
        (99, LogLevel.DEBUG),
        (100, LogLevel.WARNING),
        (202, LogLevel.INFO),
        (399, LogLevel.INFO),
        (412, LogLevel.ERROR),
        (500, LogLevel.ERROR),
        (501, LogLevel.ERROR),
    ],
)
def test_log_message__level_derives_from_code(code: int, level: LogLevel) -> None:
    message = LogMessage("origin", TaskListPosition.new("localhost"), "text", code)

    assert message.level is level


class _CodedError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (RuntimeError("boom"), LogCode.SYSTEM_ERROR),
        (_CodedError("warning-ish", 100), LogCode.SYSTEM_ERROR),
        (_CodedError("unsupported", 416), 416),
    ],
)
def test_log_message__from_exception(exc: Exception, code: int) -> None:
    message = _collect()

    log = LogMessage.from_exception(exc, message)

    assert log.msg_code == code
    assert log.is_error
    assert log.origin == message.target
    assert log.target == "localhost"
    assert log.technical_msg == str(exc)
    assert type(exc).__name__ in str(log.msg_params["trace"])


def test_log_message__needs_a_process_task() -> None:
    message = WorkflowMessage.collect_data_of(USER, "a", "b")

    with pytest.raises(InvalidMessageError, match="not connected"):
        LogMessage.from_exception(RuntimeError("x"), message)


def test_task_list_position__parses_and_prints() -> None:
    position = TaskListPosition.new("node-1", position=3)

    assert TaskListPosition.parse(str(position)) == position
    assert position.at(4).position == 4
    with pytest.raises(InvalidMessageError):
        TaskListPosition.parse("node-1:PROCESS_ID:x")
