"""Every name a workflow config uses leads somewhere, or loading it fails: channel targets,
dispatchers and utils, process definitions' sources and targets, service import paths."""

from __future__ import annotations

import pytest

from link_message_queue.engine import ChannelConfigError, WorkflowEngine
from link_message_queue.services import (
    PRODUCER_SERVICE,
    WORKFLOW_PROCESSOR_SERVICE,
    ServiceImportError,
    ServiceRegistry,
)

HANDLER = "Acme\\UserHandler"
NODE = "localhost"


def _handler(message: object, context: object) -> None:
    """A handler service."""


class Exploding:
    def __init__(self) -> None:
        raise AssertionError("a path is checked without instantiating what it names")


def _engine(channels: dict[str, object], *services: str) -> WorkflowEngine:
    registry = ServiceRegistry()
    registry.register(PRODUCER_SERVICE, _handler, enqueues=True, reserved=True)
    for name in services:
        registry.register(name, _handler)
    return WorkflowEngine(channels, registry, node_name=NODE)


def _queue(*targets: str) -> dict[str, object]:
    return {"targets": list(targets), "sender": NODE, "message_dispatcher": PRODUCER_SERVICE}


def test_config_names__a_typo_in_a_queue_channel_target_names_channel_target_and_services() -> None:
    engine = _engine({"queue": _queue("Acme\\UserHandlr")}, HANDLER)

    with pytest.raises(ChannelConfigError) as error:
        engine.check_names()

    message = str(error.value)
    assert "channel 'queue': target 'Acme\\\\UserHandlr'" in message
    assert "Registered: " in message
    assert repr(HANDLER) in message


def test_config_names__a_local_channel_target_must_be_a_service() -> None:
    engine = _engine({"local": {"targets": ["Acme\\Nobody"]}}, HANDLER)

    with pytest.raises(ChannelConfigError, match=r"channel 'local': target 'Acme\\\\Nobody'"):
        engine.check_names()


def test_config_names__an_unknown_message_dispatcher_is_named() -> None:
    engine = _engine({"remote": {"targets": [HANDLER], "message_dispatcher": "acme.htttp"}})

    with pytest.raises(
        ChannelConfigError, match=r"channel 'remote': message_dispatcher 'acme\.htttp'"
    ):
        engine.check_names()


def test_config_names__an_unknown_util_is_named() -> None:
    engine = _engine({"local": {"targets": [HANDLER], "utils": ["flow.loger"]}}, HANDLER)

    with pytest.raises(ChannelConfigError, match=r"channel 'local': util 'flow\.loger'"):
        engine.check_names()


def test_config_names__a_target_carried_to_another_node_need_not_be_a_service_here() -> None:
    engine = _engine(
        {
            "remote": {"targets": ["other-node"], "message_dispatcher": "acme.http"},
            "queue": _queue("other-node"),
        },
        "acme.http",
    )

    engine.check_names({"other-node": "process 'p', task 1 (run_sub_process)"})


def test_config_names__the_node_name_is_a_target_only_with_the_workflow_processor() -> None:
    engine = _engine({"queue": _queue(NODE)})

    with pytest.raises(ChannelConfigError, match="target 'localhost'"):
        engine.check_names()
    engine.registry.register(WORKFLOW_PROCESSOR_SERVICE, _handler)
    engine.check_names()


def test_config_names__a_name_used_elsewhere_is_reported_where_it_is_named() -> None:
    engine = _engine({}, HANDLER)

    with pytest.raises(
        ChannelConfigError, match=r"process 'p', task 1 \(collect_data\): source 'Acme\\\\Srce'"
    ):
        engine.check_names({"Acme\\Srce": "process 'p', task 1 (collect_data): source"})


def test_config_names__wildcard_and_known_names_pass() -> None:
    engine = _engine({"local": {"targets": [HANDLER]}, "queue": _queue("*")}, HANDLER)

    engine.check_names({HANDLER: "somewhere"})


@pytest.mark.parametrize(
    ("path", "error"),
    [
        (
            "acme_missing_module:Handler",
            r"service 'Acme\\\\X': cannot import 'acme_missing_module'",
        ),
        (f"{__name__}:Exploded", r"service 'Acme\\\\X': .* has no attribute 'Exploded'"),
    ],
)
def test_config_names__a_service_path_that_leads_nowhere_is_named(path: str, error: str) -> None:
    registry = ServiceRegistry()
    registry.register("Acme\\X", path)

    with pytest.raises(ServiceImportError, match=error):
        registry.check_paths()


def test_config_names__a_good_service_path_is_checked_without_instantiating_it() -> None:
    registry = ServiceRegistry()
    registry.register("Acme\\X", f"{__name__}:Exploding")

    registry.check_paths()
