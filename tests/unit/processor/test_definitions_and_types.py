"""Process definitions are validated at load with errors that name the process and the task;
payload types validate data and name the bad place."""

from __future__ import annotations

from typing import Any

import pytest

from link_message_queue.processor.definitions import load_process_definitions
from link_message_queue.processor.errors import InvalidPayloadError, ProcessDefinitionError
from link_message_queue.processor.types import TypeRegistry
from tests import processor_workflow as workflow

COLLECT = {"task_type": "collect_data", "source": "s", "processing_type": "T"}
WRITE = {"task_type": "process_data", "target": "t", "allowed_types": ["T"]}


def test_definitions__the_test_workflow_loads() -> None:
    definitions = load_process_definitions(workflow.PROCESSES)
    assert {name: d.process_type for name, d in definitions.items()} == {
        workflow.COLLECT_USERS: "linear_messaging",
        workflow.USERS_COLLECTED: "parallel_for_each",
        workflow.CHUNK_START: "parallel_chunk",
    }


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"process_type": "parallel_fork", "tasks": [COLLECT]}, "process 'p': process_type"),
        ({"process_type": "linear_messaging", "tasks": []}, "process 'p': tasks must be"),
        ({"process_type": "linear_messaging", "tasks": [COLLECT], "x": 1}, "unknown keys ['x']"),
        (
            {"process_type": "linear_messaging", "tasks": [COLLECT, {"task_type": "nap"}]},
            "process 'p', task 2: task_type must be one of",
        ),
        (
            {"process_type": "linear_messaging", "tasks": [{"task_type": "collect_data"}]},
            "process 'p', task 1 (collect_data): missing ['processing_type', 'source']",
        ),
        (
            {"process_type": "linear_messaging", "tasks": [{**WRITE, "allowed_types": []}]},
            "task 1 (process_data): allowed_types must be a non-empty list",
        ),
        (
            {"process_type": "linear_messaging", "tasks": [{**WRITE, "preferred_type": "U"}]},
            "preferred_type 'U' is not in allowed_types",
        ),
        (
            {"process_type": "linear_messaging", "tasks": [{**COLLECT, "source": ""}]},
            "source must be a non-empty string",
        ),
        (
            {"process_type": "linear_messaging", "tasks": [{**COLLECT, "metadata": [1]}]},
            "task 1 (collect_data): metadata",
        ),
        (
            {"process_type": "parallel_chunk", "tasks": [COLLECT]},
            "a parallel_chunk process has exactly one task, a run_sub_process",
        ),
        (
            {
                "process_type": "parallel_for_each",
                "tasks": [
                    {
                        "task_type": "run_sub_process",
                        "target_node_name": "localhost",
                        "process_definition": {"process_type": "linear_messaging", "tasks": [1]},
                    }
                ],
            },
            "process 'p > task 1', task 1: must be a dict",
        ),
        (
            {
                "process_type": "linear_messaging",
                "tasks": [{"task_type": "manipulate_payload", "callable": "no.such:thing"}],
            },
            "task 1 (manipulate_payload): cannot load 'no.such:thing'",
        ),
    ],
)
def test_definitions__bad_definitions_name_the_process_and_task(
    definition: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProcessDefinitionError) as raised:
        load_process_definitions({"p": definition})
    assert message in str(raised.value)


def test_definitions__processes_must_be_a_dict() -> None:
    with pytest.raises(ProcessDefinitionError, match="PROCESSES must be a dict"):
        load_process_definitions([])


def test_types__records_and_collections_validate_their_items() -> None:
    types = workflow.TYPES
    good = [{"id": 1, "name": "A", "email": "a@example.com"}]
    types.validate(workflow.USERS, good)
    types.validate(workflow.USERS, None)  # a collect-data command carries no data yet
    with pytest.raises(InvalidPayloadError) as raised:
        types.validate(workflow.USERS, [*good, {"id": "2", "name": "B", "email": "b@x"}])
    assert raised.value.where == "data[1].id"
    with pytest.raises(InvalidPayloadError) as raised:
        types.validate(workflow.USERS, [{"id": 3, "name": "C"}])
    assert raised.value.where == "data[0].email"
    with pytest.raises(InvalidPayloadError, match="must be a list"):
        types.validate(workflow.USERS, {"id": 1})


@pytest.mark.parametrize(
    ("type_name", "good", "bad"),
    [
        ("string", "x", 1),
        ("integer", 1, True),
        ("float", 1.5, "1.5"),
        ("boolean", False, 0),
        ("datetime", "2026-11-27T08:00:00+00:00", "yesterday"),
        ("dictionary", {"a": 1}, [1]),
        ("collection", [1, "a"], {"a": 1}),
    ],
)
def test_types__built_in_kinds(type_name: str, good: object, bad: object) -> None:
    types = TypeRegistry()
    types.validate(type_name, good)
    with pytest.raises(InvalidPayloadError):
        types.validate(type_name, bad)


def test_types__unknown_and_duplicate_types_are_refused() -> None:
    types = TypeRegistry()
    with pytest.raises(InvalidPayloadError, match="unknown type 'Nope'"):
        types.validate("Nope", 1)
    with pytest.raises(InvalidPayloadError, match="unknown type 'Missing'"):
        types.record("R", {"a": "Missing"})
    types.record("R", {"a": "integer"})
    with pytest.raises(ValueError, match="registered already"):
        types.record("R", {"a": "integer"})
