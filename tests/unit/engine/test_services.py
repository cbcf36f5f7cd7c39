"""The service registry: names, aliases, dotted paths, reserved names."""

from __future__ import annotations

import pytest

from link_message_queue.services import (
    PRODUCER_SERVICE,
    WORKFLOW_PROCESSOR_QUEUE_ALIAS,
    ServiceError,
    ServiceImportError,
    ServiceNotFoundError,
    ServiceRegistry,
)


class Greeter:
    def __init__(self) -> None:
        self.greeting = "hello"


def test_services__register_and_get_an_object() -> None:
    registry = ServiceRegistry()
    service = object()

    registry.register("acme.service", service)

    assert registry.get("acme.service") is service
    assert registry.has("acme.service")


def test_services__dotted_path_is_imported_once_and_classes_are_built() -> None:
    registry = ServiceRegistry()
    registry.register("greeter", f"{__name__}:Greeter")
    registry.register("dumps", "json.dumps")

    first = registry.get("greeter")

    assert isinstance(first, Greeter)
    assert registry.get("greeter") is first
    assert registry.get("dumps")([1]) == "[1]"


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("no_such_module_xyz:thing", "cannot import"),
        ("json:no_such_attribute", "has no attribute"),
        ("json", "not module:attribute"),
    ],
)
def test_services__bad_dotted_path_names_the_service(path: str, error: str) -> None:
    registry = ServiceRegistry()
    registry.register("broken", path)

    with pytest.raises(ServiceImportError, match=rf"service 'broken': .*{error}"):
        registry.get("broken")


def test_services__aliases_resolve_and_cycles_are_refused() -> None:
    registry = ServiceRegistry()
    registry.register("real", 1)
    registry.alias("nick", "real")
    registry.alias("a", "b")

    assert registry.get("nick") == 1
    with pytest.raises(ServiceError, match="cycle"):
        registry.alias("b", "a")


def test_services__missing_service_lists_what_exists() -> None:
    registry = ServiceRegistry()
    registry.register("present", 1)

    with pytest.raises(ServiceNotFoundError, match=r"'absent'.*present"):
        registry.get("absent")


def test_services__reserved_names_belong_to_the_bridge() -> None:
    registry = ServiceRegistry()

    with pytest.raises(ServiceError, match="reserved"):
        registry.register(PRODUCER_SERVICE, object())
    with pytest.raises(ServiceError, match="reserved"):
        registry.alias(WORKFLOW_PROCESSOR_QUEUE_ALIAS, "x")

    producer = object()
    registry.register(PRODUCER_SERVICE, producer, enqueues=True, reserved=True)
    assert registry.get(WORKFLOW_PROCESSOR_QUEUE_ALIAS) is producer
    assert registry.enqueues(WORKFLOW_PROCESSOR_QUEUE_ALIAS)
    assert not registry.enqueues("anything.else")
