"""The service registry: handlers and dispatchers by name, like prooph's service manager.

A service is registered as an object or as a dotted import path (``package.module:attribute``
or ``package.module.attribute``), imported on first use; a class found there is instantiated
once with no arguments. Aliases point one name at another.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

PRODUCER_SERVICE = "link.message_queue.producer"
WORKFLOW_PROCESSOR_QUEUE_ALIAS = "link.app.workflow_processor_message_queue"
WORKFLOW_PROCESSOR_SERVICE = "link.workflow_processor"
CONSUMER_SENDER = "link.message_queue.consumer"

RESERVED_NAMES = frozenset({PRODUCER_SERVICE, WORKFLOW_PROCESSOR_QUEUE_ALIAS})
_MAX_ALIAS_HOPS = 32


class ServiceError(Exception):
    """A service could not be registered or found."""


class ServiceNotFoundError(ServiceError, LookupError):
    """No service is registered under that name."""


class ServiceImportError(ServiceError):
    """A service's dotted import path does not lead to an object."""


class ServiceRegistry:
    """Services by name (prooph's service locator): objects, or dotted import paths imported on
    first use, plus aliases. Raises ``ServiceError`` for a bad or reserved name,
    ``ServiceNotFoundError`` for an unknown one, ``ServiceImportError`` for a path that does not
    import."""

    def __init__(self) -> None:
        self._services: dict[str, Any] = {}
        self._paths: dict[str, str] = {}
        self._aliases: dict[str, str] = {WORKFLOW_PROCESSOR_QUEUE_ALIAS: PRODUCER_SERVICE}
        # Names whose dispatcher puts messages on the queue: needed for loop safety.
        self._enqueuing: set[str] = {PRODUCER_SERVICE}

    def register(
        self, name: str, service: object, *, enqueues: bool = False, reserved: bool = False
    ) -> None:
        """Register ``service`` (an object, or a dotted import path as a string) as ``name``.

        ``enqueues`` marks a dispatcher that puts messages on a queue; ``reserved`` is for the
        bridge alone, which owns the names in :data:`RESERVED_NAMES`."""
        self._check_name(name, reserved)
        if name in self._aliases:
            raise ServiceError(f"{name!r} is an alias of {self._aliases[name]!r}, not a service")
        if isinstance(service, str):
            if not service or service.startswith((".", ":")):
                raise ServiceImportError(f"service {name!r}: {service!r} is not a dotted path")
            self._paths[name] = service
            self._services.pop(name, None)
        else:
            self._services[name] = service
            self._paths.pop(name, None)
        if enqueues:
            self._enqueuing.add(name)

    def alias(self, alias: str, name: str, *, reserved: bool = False) -> None:
        """Make ``alias`` another name of service ``name``. Raises ``ServiceError`` for an alias of
        itself, a reserved name, or an alias cycle."""
        self._check_name(alias, reserved)
        if alias == name:
            raise ServiceError(f"alias {alias!r} cannot point at itself")
        self._aliases[alias] = name
        self.resolve_name(alias)  # rejects cycles at once

    def resolve_name(self, name: str) -> str:
        """The registered name behind ``name`` after following aliases."""
        seen = [name]
        while name in self._aliases:
            name = self._aliases[name]
            if name in seen or len(seen) > _MAX_ALIAS_HOPS:
                raise ServiceError(f"aliases form a cycle: {' -> '.join([*seen, name])}")
            seen.append(name)
        return name

    def has(self, name: str) -> bool:
        """Whether ``name`` (after aliases) is registered, as an object or a path."""
        resolved = self.resolve_name(name)
        return resolved in self._services or resolved in self._paths

    def enqueues(self, name: str) -> bool:
        """Whether ``name`` (or what it aliases) dispatches onto a queue."""
        return self.resolve_name(name) in self._enqueuing

    def get(self, name: str) -> Any:
        """The service called ``name`` (after aliases), importing a dotted path on first use. Raises
        ``ServiceNotFoundError`` listing the registered names, or ``ServiceImportError``."""
        resolved = self.resolve_name(name)
        if resolved in self._services:
            return self._services[resolved]
        if resolved in self._paths:
            service = _import(resolved, self._paths[resolved])
            self._services[resolved] = service
            del self._paths[resolved]
            return service
        known = ", ".join(sorted(self.names())) or "none"
        via = f" (alias of {resolved!r})" if resolved != name else ""
        raise ServiceNotFoundError(
            f"no service is registered as {name!r}{via}; registered: {known}"
        )

    def check_paths(self) -> None:
        """Import every service registered by dotted path, without instantiating it, so that a
        path leading nowhere stops start-up instead of failing the first message for it.

        Raises :class:`ServiceImportError` naming the service and its path."""
        for name, path in self._paths.items():
            _resolve(name, path)

    def names(self) -> Iterator[str]:
        """Every registered name: services, paths not imported yet, and aliases."""
        yield from self._services
        yield from self._paths
        yield from self._aliases

    def _check_name(self, name: str, reserved: bool) -> None:
        if not isinstance(name, str) or not name:
            raise ServiceError("a service name must be a non-empty string")
        if name in RESERVED_NAMES and not reserved:
            raise ServiceError(f"{name!r} is reserved for the message queue bridge")


def _import(name: str, path: str) -> Any:
    target = _resolve(name, path)
    if isinstance(target, type):
        target = target()
    return target


def _resolve(name: str, path: str) -> Any:
    module_name, _, attribute = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attribute:
        raise ServiceImportError(f"service {name!r}: {path!r} is not module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ServiceImportError(f"service {name!r}: cannot import {module_name!r}: {exc}") from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ServiceImportError(
                f"service {name!r}: {module_name!r} has no attribute {attribute!r}"
            ) from None
    return target
