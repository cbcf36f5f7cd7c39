"""Everything one process needs to carry workflow messages, built from the settings and the
user's config module (``LINK_MQ_CONFIG``): engine, registry, workflow engine, producer,
tick step (with its message source), worker-mode handler, tick listeners."""

from __future__ import annotations

import importlib
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .bridge.dead_letters import DeadLetters
from .bridge.errors import BridgeError
from .bridge.forwarding import Forwarding
from .bridge.outbox import Outbox, OutboxRelay, OutboxRow
from .bridge.producer import Producer, enable_workflow_processor_message_queue, register_producer
from .bridge.retries import RetryPolicy
from .bridge.sources import BrokerSource, DeliverySource
from .bridge.taskbody import WORKFLOW_TASK
from .bridge.tick_step import MessageSource, TickStep
from .bridge.ticks import StepTickListener, TickBus
from .bridge.worker_handler import WorkerHandler
from .db import database_for
from .engine import WorkflowEngine
from .monitoring.gauges import Gauges
from .processor.definitions import load_process_definitions, named_targets
from .processor.types import TypeRegistry
from .processor.workflow_processor import WorkflowProcessor
from .services import WORKFLOW_PROCESSOR_SERVICE, ServiceRegistry
from .settings import Settings
from .transport import Deliveries, LeaseKeeper, MessageStore, TransportOptions

if TYPE_CHECKING:
    from celery import Celery

DEFAULT_CHANNELS: Mapping[str, Any] = {"local": {"targets": []}}


@dataclass(frozen=True)
class WorkflowConfig:
    """The workflow configuration module's contents: ``CHANNELS``, ``SERVICES``, whether the
    processor's own queue channel is added (``enable_queue``), extra tick listeners, ``PROCESSES``
    and ``TYPES``."""

    channels: Mapping[str, Any]
    services: Mapping[str, Any]
    enable_queue: bool
    tick_listeners: Sequence[str] = ()  # service names of extra TickOccurred listeners
    processes: Mapping[str, Any] | None = None  # PROCESSES: start message name -> definition
    types: TypeRegistry | None = None  # TYPES: the processing types of payloads


def load_config(settings: Settings) -> WorkflowConfig:
    """``CHANNELS``, ``SERVICES``, ``ENABLE_WORKFLOW_PROCESSOR_MESSAGE_QUEUE``,
    ``TICK_LISTENERS`` (service names), ``PROCESSES`` and ``TYPES`` (a ``TypeRegistry``) of the
    module named by ``LINK_MQ_CONFIG`` (all optional)."""
    module: ModuleType | None = None
    if settings.config_module:
        try:
            module = importlib.import_module(settings.config_module)
        except ImportError as exc:
            raise BridgeError(
                f"LINK_MQ_CONFIG={settings.config_module!r} cannot be imported: {exc}; check "
                "the module's name and that its folder is on the Python path (PYTHONPATH)"
            ) from exc
        except Exception as exc:  # the user's module failed while it ran: say which
            raise BridgeError(
                f"LINK_MQ_CONFIG={settings.config_module!r} failed while it was imported: "
                f"{type(exc).__name__}: {exc}; run `python -c 'import {settings.config_module}'` "
                "to see where"
            ) from exc
    channels = getattr(module, "CHANNELS", DEFAULT_CHANNELS)
    services = getattr(module, "SERVICES", {})
    if not isinstance(channels, Mapping) or not isinstance(services, Mapping):
        raise BridgeError(f"{settings.config_module}: CHANNELS and SERVICES must be dicts")
    listeners = getattr(module, "TICK_LISTENERS", ())
    if isinstance(listeners, str) or not all(isinstance(name, str) for name in listeners):
        raise BridgeError(
            f"{settings.config_module}: TICK_LISTENERS must be a list of service names"
        )
    types = getattr(module, "TYPES", None)
    if types is not None and not isinstance(types, TypeRegistry):
        raise BridgeError(f"{settings.config_module}: TYPES must be a TypeRegistry")
    return WorkflowConfig(
        channels,
        services,
        bool(getattr(module, "ENABLE_WORKFLOW_PROCESSOR_MESSAGE_QUEUE", False)),
        tuple(listeners),
        getattr(module, "PROCESSES", None),
        types,
    )


@dataclass
class Runtime:
    """Everything a worker or CLI command needs, built once by ``build_runtime``."""

    settings: Settings
    store: MessageStore
    registry: ServiceRegistry
    workflow_engine: WorkflowEngine
    producer: Producer
    dead_letters: DeadLetters
    step: TickStep
    worker: WorkerHandler
    ticks: TickBus
    step_listener: StepTickListener
    outbox: Outbox
    relay: OutboxRelay


def build_runtime(app: Celery, settings: Settings, config: WorkflowConfig | None = None) -> Runtime:
    """Build the runtime for Celery ``app`` from ``settings`` and the workflow ``config`` (loaded
    from ``settings`` when None). Every configured name is checked now: raises
    ``ChannelConfigError`` for a channel or target that leads nowhere, ``ServiceImportError`` for
    a service path that does not import."""
    config = config or load_config(settings)
    options = TransportOptions(table_prefix=settings.table_prefix, lease_s=settings.lease_s)
    database = database_for(settings.database_url, options)
    store = MessageStore(database.engine, database.tables)
    registry = ServiceRegistry()
    outbox = Outbox(store.engine, store.tables)
    producer = Producer(app, settings.queue, outbox if settings.uses_outbox else None)
    register_producer(registry, producer)
    for name, service in config.services.items():
        registry.register(name, service)
    targets: dict[str, str] = {}
    if config.processes is not None:
        definitions = load_process_definitions(config.processes)
        targets = named_targets(definitions, settings.node_name)
        processor = WorkflowProcessor(
            definitions,
            node_name=settings.node_name,
            engine=store.engine,
            table_prefix=settings.table_prefix,
            types=config.types,
        )
        registry.register(WORKFLOW_PROCESSOR_SERVICE, processor)
    channels = config.channels
    if config.enable_queue:
        channels = enable_workflow_processor_message_queue(channels, settings.node_name)
    workflow_engine = WorkflowEngine(channels, registry, settings.node_name)
    # Every name the config uses must lead somewhere now, not at the first message for it.
    registry.check_paths()
    workflow_engine.check_names(targets)
    dead_letters = DeadLetters(store.engine, store.tables)
    policy = RetryPolicy(settings.max_attempts, settings.retry_backoff_s)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    forwarding = Forwarding(store, workflow_engine, dead_letters, settings.queue, policy)
    worker = WorkerHandler(forwarding)
    # The step's lock and the leases of the messages it holds, renewed by one keeper thread
    # (started on first use); the worker's transport cleans the queues, not this one.
    keeper = LeaseKeeper(
        store,
        owner,
        lease_s=options.lease_s,
        renew_interval_s=options.renew_interval_s,
        cleanup_interval_s=None,
    )
    source: MessageSource = DeliverySource(Deliveries(keeper, settings.queue))
    if settings.uses_outbox:
        # The workflow queue lives in RabbitMQ or Redis: ticks take messages from there.
        source = BrokerSource(app, outbox, settings.queue)
    step = TickStep(forwarding, source, keeper)
    # The relay's lock is a lease like a message's: a relay killed while it holds it lets the
    # next one in after LINK_MQ_LEASE_S, not after a fixed 30 s.
    relay = OutboxRelay(outbox, store, _publisher(app), owner=owner, lock_s=settings.lease_s)
    ticks = TickBus()
    gauges = Gauges(store.engine, store.tables.gauge)
    listener = StepTickListener(step, settings.messages_per_tick, gauges.set)
    ticks.subscribe(listener)
    for name in config.tick_listeners:
        extra = registry.get(name)
        if not callable(getattr(extra, "on_tick", None)):
            raise BridgeError(f"tick listener {name!r} has no on_tick(tick) method")
        ticks.subscribe(extra)
    return Runtime(
        settings,
        store,
        registry,
        workflow_engine,
        producer,
        dead_letters,
        step,
        worker,
        ticks,
        listener,
        outbox,
        relay,
    )


def _publisher(app: Celery) -> Callable[[OutboxRow], None]:
    def publish(row: OutboxRow) -> None:
        app.send_task(
            WORKFLOW_TASK,
            args=(row.body,),
            queue=row.queue,
            countdown=row.countdown_s,
            retries=row.retries,
        )

    return publish
