"""``link-mq demo``: a workflow message travelling collect → collected → process → processed.

Engine-only for now: the messages are routed synchronously. The bridge (producer, consumer step,
Celery worker and beat) replaces this with the same flow through the database queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .engine import DispatchContext, WorkflowEngine
from .messages import Payload, ProcessingMessage, TaskListPosition, WorkflowMessage, WorkflowStep
from .services import WORKFLOW_PROCESSOR_SERVICE, ServiceRegistry

USER_TYPE = "LinkMq\\Demo\\Type\\User"
SOURCE = "LinkMq\\Demo\\UserSource"
TARGET = "LinkMq\\Demo\\UserArchive"
NODE = "localhost"


@dataclass
class DemoRun:
    hops: list[str] = field(default_factory=list)
    archived: list[object] = field(default_factory=list)


def run_demo(users: int = 3, say: Callable[[str], None] = print) -> DemoRun:
    run = DemoRun()
    registry = ServiceRegistry()

    def source(message: ProcessingMessage, context: DispatchContext) -> None:
        assert isinstance(message, WorkflowMessage)
        data = [{"id": i, "name": f"user-{i}"} for i in range(1, users + 1)]
        context.engine.dispatch(message.answer_with(Payload(USER_TYPE, data)))

    def archive(message: ProcessingMessage, context: DispatchContext) -> None:
        assert isinstance(message, WorkflowMessage)
        run.archived.extend(message.payload.data)
        context.engine.dispatch(message.answer_with_data_processing_completed())

    def processor(message: ProcessingMessage, context: DispatchContext) -> None:
        assert isinstance(message, WorkflowMessage)
        if message.step is WorkflowStep.DATA_COLLECTED:
            assert message.process_task_list_position is not None
            position = message.process_task_list_position.at(2)
            context.engine.dispatch(message.prepare_data_processing(position, TARGET))

    registry.register(SOURCE, source)
    registry.register(TARGET, archive)
    registry.register(WORKFLOW_PROCESSOR_SERVICE, processor)

    def trace(message: ProcessingMessage, context: DispatchContext) -> None:
        run.hops.append(f"{message.name}  {message.origin} -> {message.target}")

    class Tracer:
        def before_dispatch(self, message: ProcessingMessage, context: DispatchContext) -> None:
            trace(message, context)

        def after_dispatch(
            self, message: ProcessingMessage, context: DispatchContext, error: BaseException | None
        ) -> None:
            return None

    registry.register("demo.tracer", Tracer())
    engine = WorkflowEngine({"local": {"targets": [], "utils": ["demo.tracer"]}}, registry, NODE)

    started = time.perf_counter()
    start = WorkflowMessage.collect_data_of(USER_TYPE, NODE, SOURCE)
    engine.dispatch(start.connect_to_process_task(TaskListPosition.new(NODE)))
    elapsed_s = time.perf_counter() - started

    for hop in run.hops:
        say(f"  {hop}")
    summary = f"{len(run.hops)} hops, {len(run.archived)} users archived"
    say(f"demo: {summary} in {elapsed_s * 1000:.1f} ms")
    return run
