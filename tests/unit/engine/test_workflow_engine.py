"""The workflow engine delivers messages to handlers; queue channels cannot loop."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from link_message_queue.engine import (
    ChannelConfigError,
    DispatchContext,
    EngineError,
    QueueLoopError,
    WorkflowEngine,
)
from link_message_queue.messages import (
    LogMessage,
    Payload,
    ProcessingMessage,
    TaskListPosition,
    WorkflowMessage,
    encode,
    to_remote,
)
from link_message_queue.services import (
    CONSUMER_SENDER,
    PRODUCER_SERVICE,
    WORKFLOW_PROCESSOR_QUEUE_ALIAS,
    WORKFLOW_PROCESSOR_SERVICE,
    ServiceRegistry,
)

HANDLER = "Acme\\UserHandler"
USER = "Acme\\User"


@dataclass
class Recorder:
    received: list[tuple[ProcessingMessage, DispatchContext]] = field(default_factory=list)

    def handle(self, message: ProcessingMessage, context: DispatchContext) -> None:
        self.received.append((message, context))


def _collect(origin: str = "localhost") -> WorkflowMessage:
    return WorkflowMessage.collect_data_of(USER, origin, HANDLER)


def _engine(
    channels: dict[str, object], **services: object
) -> tuple[WorkflowEngine, ServiceRegistry]:
    registry = ServiceRegistry()
    for name, service in services.items():
        registry.register(name.replace("__", "\\"), service)
    return WorkflowEngine(channels, registry, node_name="localhost"), registry


def test_engine__delivers_a_workflow_message_to_a_local_handler() -> None:
    handler = Recorder()
    engine, _ = _engine({"local": {"targets": [HANDLER]}}, Acme__UserHandler=handler)
    message = _collect()

    engine.dispatch(message)

    assert [m for m, _ in handler.received] == [message]
    context = handler.received[0][1]
    assert context.channel.name == "local"
    assert context.engine is engine
    assert context.sender is None


def test_engine__delivers_a_remote_message_after_translating_it() -> None:
    handler = Recorder()
    engine, _ = _engine({}, Acme__UserHandler=handler)
    message = _collect()

    engine.dispatch(to_remote(message), sender="someone")

    assert handler.received[0][0] == message
    assert handler.received[0][1].sender == "someone"


def test_engine__channel_dispatcher_carries_messages_for_its_targets() -> None:
    dispatcher, handler = Recorder(), Recorder()
    engine, registry = _engine(
        {"remote": {"targets": [HANDLER], "message_dispatcher": "acme.remote"}},
        Acme__UserHandler=handler,
    )
    registry.register("acme.remote", dispatcher)

    engine.dispatch(_collect())

    assert len(dispatcher.received) == 1
    assert handler.received == []


def test_engine__node_name_is_routed_to_the_workflow_processor() -> None:
    processor = Recorder()
    engine, registry = _engine({})
    registry.register(WORKFLOW_PROCESSOR_SERVICE, processor)
    answer = _collect().answer_with(Payload(USER, {"name": "Ada"}))

    engine.dispatch(answer)

    assert processor.received[0][0] == answer


def test_engine__log_messages_go_to_the_node_of_their_task() -> None:
    processor = Recorder()
    engine, registry = _engine({})
    registry.register(WORKFLOW_PROCESSOR_SERVICE, processor)
    log = LogMessage(HANDLER, TaskListPosition.new("localhost"), "started", 202)

    engine.dispatch(log)

    assert processor.received[0][0] == log


def test_engine__plain_functions_are_handlers_too() -> None:
    seen: list[str] = []
    engine, _ = _engine({}, Acme__UserHandler=lambda message, context: seen.append(message.name))

    engine.dispatch(_collect())

    assert seen == [_collect().name]


def test_engine__handler_errors_propagate() -> None:
    def failing(message: ProcessingMessage, context: DispatchContext) -> None:
        raise RuntimeError("handler failed")

    engine, _ = _engine({}, Acme__UserHandler=failing)

    with pytest.raises(RuntimeError, match="handler failed"):
        engine.dispatch(_collect())


def test_engine__unknown_target_names_the_service_and_what_exists() -> None:
    engine, _ = _engine({}, other=Recorder())

    with pytest.raises(LookupError, match=r"Acme\\\\UserHandler.*registered: .*other"):
        engine.dispatch(_collect())


def test_engine__a_non_handler_service_is_refused() -> None:
    engine, _ = _engine({}, Acme__UserHandler=42)

    with pytest.raises(EngineError, match="neither a handler"):
        engine.dispatch(_collect())


def test_engine__channel_utils_see_each_dispatch_and_its_error() -> None:
    calls: list[tuple[str, object]] = []

    class Plugin:
        def before_dispatch(self, message: ProcessingMessage, context: DispatchContext) -> None:
            calls.append(("before", message.name))

        def after_dispatch(
            self, message: ProcessingMessage, context: DispatchContext, error: BaseException | None
        ) -> None:
            calls.append(("after", error))

    def failing(message: ProcessingMessage, context: DispatchContext) -> None:
        raise ValueError("nope")

    engine, registry = _engine(
        {"local": {"targets": [], "utils": ["flow.logger"]}}, Acme__UserHandler=failing
    )
    registry.register("flow.logger", Plugin())

    with pytest.raises(ValueError, match="nope"):
        engine.dispatch(_collect())
    assert calls[0] == ("before", _collect().name)
    assert calls[1][0] == "after"
    assert isinstance(calls[1][1], ValueError)


# -- loop safety ------------------------------------------------------------------------------


QUEUE_CHANNEL = {
    "workflow_processor_message_queue": {
        "targets": ["*"],
        "sender": "localhost",
        "message_dispatcher": WORKFLOW_PROCESSOR_QUEUE_ALIAS,
    }
}


def _queue_engine() -> tuple[WorkflowEngine, Recorder, Recorder]:
    producer, handler = Recorder(), Recorder()
    engine, registry = _engine(QUEUE_CHANNEL, Acme__UserHandler=handler)
    registry.register(PRODUCER_SERVICE, producer, enqueues=True, reserved=True)
    return engine, producer, handler


def test_engine__processor_commands_go_through_the_queue_channel() -> None:
    engine, producer, handler = _queue_engine()

    engine.dispatch(_collect())

    assert len(producer.received) == 1
    assert handler.received == []


def test_engine__consumer_redispatch_reaches_the_target_not_the_queue() -> None:
    engine, producer, handler = _queue_engine()

    engine.dispatch(_collect(), sender=CONSUMER_SENDER)

    assert producer.received == []
    assert len(handler.received) == 1


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        ({"targets": ["*"], "message_dispatcher": PRODUCER_SERVICE}, "no 'sender' filter"),
        (
            {"targets": ["*"], "origin": "localhost", "message_dispatcher": PRODUCER_SERVICE},
            "no 'sender' filter",
        ),
        (
            {"targets": ["*"], "sender": CONSUMER_SENDER, "message_dispatcher": PRODUCER_SERVICE},
            "consumer's own sender",
        ),
        ({"targets": ["*"], "message_dispatcher": WORKFLOW_PROCESSOR_QUEUE_ALIAS}, "no 'sender'"),
    ],
)
def test_engine__queue_channels_that_would_loop_are_refused(
    channel: dict[str, object], error: str
) -> None:
    with pytest.raises(ChannelConfigError, match=error):
        _engine({"queue": channel})


def test_engine__local_channel_cannot_enqueue() -> None:
    with pytest.raises(ChannelConfigError, match="fallback"):
        _engine(
            {
                "local": {
                    "targets": [],
                    "sender": "localhost",
                    "message_dispatcher": PRODUCER_SERVICE,
                }
            }
        )


def test_engine__enqueuing_dispatcher_registered_late_still_cannot_loop() -> None:
    engine, registry = _engine({"queue": {"targets": ["*"], "message_dispatcher": "my.queue"}})
    registry.register("my.queue", Recorder(), enqueues=True)

    with pytest.raises(QueueLoopError, match="would queue it again"):
        engine.dispatch(_collect(), sender=CONSUMER_SENDER)


def test_engine__events_never_match_a_sender_filtered_queue_channel() -> None:
    engine, producer, _ = _queue_engine()
    processor = Recorder()
    engine.registry.register(WORKFLOW_PROCESSOR_SERVICE, processor)
    answer = WorkflowMessage.collect_data_of(USER, "localhost", HANDLER).answer_with(Payload(USER))

    engine.dispatch(answer)

    assert producer.received == []
    assert processor.received[0][0] == answer
    assert encode(answer)
