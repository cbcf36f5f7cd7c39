"""Process definitions: plain config keyed by the name of the message that starts them, as
prooph's ``processing.processes``. Validated at load; errors name the process and the task."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..messages.metadata import validate_metadata
from .errors import ProcessDefinitionError

LINEAR = "linear_messaging"
FOR_EACH = "parallel_for_each"
CHUNK = "parallel_chunk"
PROCESS_TYPES = (LINEAR, FOR_EACH, CHUNK)

COLLECT_DATA = "collect_data"
PROCESS_DATA = "process_data"
RUN_SUB_PROCESS = "run_sub_process"
MANIPULATE_PAYLOAD = "manipulate_payload"

_TASK_KEYS: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {
    # task type: (required keys, optional keys)
    COLLECT_DATA: (frozenset({"source", "processing_type"}), frozenset({"metadata"})),
    PROCESS_DATA: (
        frozenset({"target", "allowed_types"}),
        frozenset({"preferred_type", "metadata"}),
    ),
    RUN_SUB_PROCESS: (
        frozenset({"target_node_name", "process_definition"}),
        frozenset({"sync_log_messages"}),
    ),
    MANIPULATE_PAYLOAD: (frozenset({"callable"}), frozenset()),
}


@dataclass(frozen=True)
class Task:
    """One task of a process definition: its ``task_type`` (prooph's task types: collect_data,
    process_data, manipulate_payload, run_sub_process) and its ``config`` as configured."""

    task_type: str
    config: Mapping[str, Any]

    @property
    def metadata(self) -> dict[str, Any]:
        """The task's configured ``metadata`` (a copy; empty when none), added to the message it
        sends."""
        return dict(self.config.get("metadata") or {})

    def manipulation(self) -> Callable[[Any], Any]:
        """manipulate_payload: the callable (``module:function`` or ``module.function``)."""
        target = self.config["callable"]
        if callable(target):
            return target  # type: ignore[no-any-return]
        module_name, _, attribute = target.replace(":", ".").rpartition(".")
        function = getattr(importlib.import_module(module_name), attribute)
        if not callable(function):
            raise ProcessDefinitionError(f"manipulate_payload callable {target!r} is not callable")
        return function  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ProcessDefinition:
    """A process of ``PROCESSES``: ``name`` (its start message, or ``<parent> sub-process``),
    ``process_type`` (prooph's linear_messaging, parallel_for_each, parallel_chunk), its ``tasks``
    and the ``raw`` JSON form."""

    name: str  # the start message name, or "<parent> sub-process" for a nested definition
    process_type: str
    tasks: tuple[Task, ...]
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    def to_config(self) -> dict[str, Any]:
        """The JSON form, as StartSubProcess carries it."""
        return dict(self.raw)


def load_process_definitions(config: object) -> dict[str, ProcessDefinition]:
    """``{start message name: definition}``, every definition (and nested sub-process
    definition) validated."""
    if not isinstance(config, Mapping):
        raise ProcessDefinitionError(f"PROCESSES must be a dict, not {type(config).__name__}")
    return {str(name): parse_definition(str(name), raw) for name, raw in config.items()}


def parse_definition(name: str, raw: object) -> ProcessDefinition:
    """Parse the configured definition ``raw`` of process ``name``. Raises
    ``ProcessDefinitionError`` naming the process and what is wrong (unknown keys, process type,
    empty tasks, a for-each/chunk process without exactly one run_sub_process task)."""
    where = f"process {name!r}"
    if not isinstance(raw, Mapping):
        raise ProcessDefinitionError(f"{where}: must be a dict, not {type(raw).__name__}")
    unknown = set(raw) - {"process_type", "tasks", "name", "config"}
    if unknown:
        raise ProcessDefinitionError(f"{where}: unknown keys {sorted(unknown)}")
    process_type = raw.get("process_type")
    if process_type not in PROCESS_TYPES:
        raise ProcessDefinitionError(
            f"{where}: process_type must be one of {list(PROCESS_TYPES)}, not {process_type!r}"
        )
    tasks_raw = raw.get("tasks")
    if not isinstance(tasks_raw, list) or not tasks_raw:
        raise ProcessDefinitionError(f"{where}: tasks must be a non-empty list")
    tasks = tuple(_parse_task(name, index, task) for index, task in enumerate(tasks_raw, 1))
    if process_type in (FOR_EACH, CHUNK) and (
        len(tasks) != 1 or tasks[0].task_type != RUN_SUB_PROCESS
    ):
        raise ProcessDefinitionError(
            f"{where}: a {process_type} process has exactly one task, a run_sub_process "
            "(the sub-process runs once per item or chunk)"
        )
    return ProcessDefinition(name, str(process_type), tasks, dict(raw))


def _parse_task(process_name: str, index: int, raw: object) -> Task:
    here = f"process {process_name!r}, task {index}"
    if not isinstance(raw, Mapping):
        raise ProcessDefinitionError(f"{here}: must be a dict, not {type(raw).__name__}")
    task_type = raw.get("task_type")
    if task_type not in _TASK_KEYS:
        raise ProcessDefinitionError(
            f"{here}: task_type must be one of {sorted(_TASK_KEYS)}, not {task_type!r}"
        )
    required, optional = _TASK_KEYS[str(task_type)]
    keys = set(raw) - {"task_type"}
    if missing := required - keys:
        raise ProcessDefinitionError(f"{here} ({task_type}): missing {sorted(missing)}")
    if unknown := keys - required - optional:
        raise ProcessDefinitionError(f"{here} ({task_type}): unknown keys {sorted(unknown)}")
    for key in ("source", "processing_type", "target", "target_node_name", "preferred_type"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            raise ProcessDefinitionError(f"{here} ({task_type}): {key} must be a non-empty string")
    if "metadata" in raw:
        try:
            validate_metadata(raw["metadata"])
        except ValueError as exc:
            raise ProcessDefinitionError(f"{here} ({task_type}): metadata: {exc}") from None
    if task_type == PROCESS_DATA:
        allowed = raw["allowed_types"]
        if (
            not isinstance(allowed, list)
            or not allowed
            or not all(isinstance(item, str) and item for item in allowed)
        ):
            raise ProcessDefinitionError(
                f"{here} ({task_type}): allowed_types must be a non-empty list of type names"
            )
        if "preferred_type" in raw and raw["preferred_type"] not in allowed:
            raise ProcessDefinitionError(
                f"{here} ({task_type}): preferred_type {raw['preferred_type']!r} "
                "is not in allowed_types"
            )
    if task_type == RUN_SUB_PROCESS:
        parse_definition(f"{process_name} > task {index}", raw["process_definition"])
        if "sync_log_messages" in raw and not isinstance(raw["sync_log_messages"], bool):
            raise ProcessDefinitionError(f"{here} ({task_type}): sync_log_messages must be a bool")
    task = Task(str(task_type), dict(raw))
    if task_type == MANIPULATE_PAYLOAD:
        target = raw["callable"]
        if not callable(target) and not isinstance(target, str):
            raise ProcessDefinitionError(
                f"{here} ({task_type}): callable must be a function or 'module:function'"
            )
        try:
            task.manipulation()
        except (ImportError, AttributeError, ValueError) as exc:
            raise ProcessDefinitionError(
                f"{here} ({task_type}): cannot load {target!r}: {exc}"
            ) from None
    return task


def named_targets(definitions: Mapping[str, ProcessDefinition], node_name: str) -> dict[str, str]:
    """``{target: where it is named}`` for every message target the processor on
    ``node_name`` dispatches to: collect_data sources, process_data targets, run_sub_process
    nodes, and those of the sub-processes that run on this node (another node checks its own)."""
    found: dict[str, str] = {}

    def walk(definition: ProcessDefinition) -> None:
        for index, task in enumerate(definition.tasks, 1):
            here = f"process {definition.name!r}, task {index} ({task.task_type})"
            for key in ("source", "target", "target_node_name"):
                if key in task.config:
                    found.setdefault(str(task.config[key]), f"{here}: {key}")
            if task.task_type == RUN_SUB_PROCESS and task.config["target_node_name"] == node_name:
                walk(
                    parse_definition(
                        f"{definition.name} > task {index}", task.config["process_definition"]
                    )
                )

    for definition in definitions.values():
        walk(definition)
    return found
