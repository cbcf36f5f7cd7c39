"""Bulk publish: many invocations of one Celery task written into the caller's transaction in
one multi-row write (COPY on PostgreSQL with psycopg, multi-row INSERTs on SQLite).

Why not ``group(...).apply_async()`` inside ``publish_on``: that writes the rows together too,
but each task first goes through Celery's ``send_task`` and kombu's ``Producer.publish``
(routing, option merging, entity declaration, retry wrapping, a result object), about
0.2-0.3 ms of the publisher's CPU per task. ``send_many`` does the per-call part once (route,
serializer, delivery mode, declaring the queue) and per task only what differs: a new task id,
Celery's protocol-2 message for it (``app.amqp.as_task_v2``, the builder ``send_task`` uses)
and its serialized body, handed to the linkmq+ channel's ``basic_publish``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celery import signals
from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr
from kombu import serialization
from kombu.compression import compress
from kombu.entity import maybe_delivery_mode
from kombu.utils.uuid import uuid

from .transport import TransportError, publish_all_or_none

if TYPE_CHECKING:
    import sqlalchemy as sa
    from celery import Task
    from sqlalchemy.orm import Session

# Execution options send_many cannot honour for a whole batch: they ask for per-message timing
# (countdown, eta, expires) that Celery turns into headers and message TTLs per call.
_REFUSED_OPTIONS = ("countdown", "eta", "expires")

# Options kombu's Producer.publish and Celery's send_task_message take as parameters (the rest
# become message properties); those send_many does not use are dropped, as they drop them.
_PUBLISH_PARAMETERS = (
    "exchange_type",
    "mandatory",
    "immediate",
    "retry",
    "retry_policy",
    "declare",
    "timeout",
    "confirm_timeout",
    "event_dispatcher",
    "content_type",
    "content_encoding",
)

# Argument types whose saferepr is their repr (numbers print as str(), equal to repr()).
_PLAIN_REPR_TYPES = frozenset({int, float, bool, type(None)})


def send_many(
    task: Task,
    arguments: Iterable[Sequence[Any]],
    connection: sa.Connection | Session,
    *,
    kwargs: Mapping[str, Any] | None = None,
    queue: str | None = None,
    priority: int | None = None,
) -> list[str]:
    """Queue one call of ``task`` per item of ``arguments`` (each the call's positional
    arguments; ``kwargs``, if given, are every call's keyword arguments) inside
    ``connection`` (a SQLAlchemy Connection or Session, on the broker's database)'s
    transaction: all visible when it commits, all gone if it rolls back, and none written
    into it if this call raises (the caller may catch the error and commit the rest of its
    work; inside a ``publish_on`` block, the block's other messages stay). They are buffered
    (in memory) and written together when this call returns, as ``publish_on`` writes a
    block's messages: PostgreSQL one COPY after one statement that reads the clock and
    signals the queue, SQLite multi-row INSERTs of up to 1,000 rows; one wake-up per queue
    (PostgreSQL NOTIFY, SQLite's doorbell after the commit). Returns the task ids (UUID text),
    in the order of ``arguments``.

    Each message is the one ``task.apply_async(args, kwargs, queue=queue, priority=priority)``
    would send: Celery task protocol 2, the same headers (a fresh ``id``, ``root_id`` and
    ``parent_id`` from the running task if any, ``argsrepr``/``kwargsrepr``, ``origin``, …)
    and properties (``correlation_id``, ``reply_to``, ``delivery_mode``, ``priority``). The
    route (``task_routes``, ``queue``) is resolved once, from the first call's arguments, so
    every call goes to the same queue, which must be bound to a direct exchange (Celery's
    default); a route naming an exchange and a routing key publishes there, as Celery does.
    Not sent: Celery's ``task-sent`` events (``task_send_sent_event``) and the deprecated
    ``task_sent`` signal; ``before_task_publish``/``after_task_publish`` are sent per message
    when they have receivers. With ``task_always_eager`` each call runs at once through
    ``apply_async``.

    Raises ``TypeError`` for an item of ``arguments`` that is not a list or tuple (naming its
    index) or ``kwargs`` that is not a mapping (``apply_async`` refuses them too), for
    arguments the task does not accept (as ``apply_async`` does),
    ``ValueError`` for a task whose options ask for per-message timing (``countdown``,
    ``eta``, ``expires``) or a route to an exchange other than direct, ``TransportError``
    when the app's broker is not ``linkmq+`` or ``connection`` is to another database,
    kombu's ``EncodeError`` for arguments the serializer refuses, ``PublishRefusedError`` for a
    message over the transport's ``max_message_bytes``, and SQLAlchemy errors of the write
    (from this call or from the caller's commit).
    """
    calls = _calls(arguments)
    if kwargs is not None and not isinstance(kwargs, Mapping):
        # As apply_async (Celery's as_task_v2): otherwise a list of pairs would become a dict.
        raise TypeError(f"send_many's kwargs must be a mapping, not {type(kwargs).__name__}")
    call_kwargs = dict(kwargs or {})
    options: dict[str, Any] = {
        key: value for key, value in task._get_exec_options().items() if value is not None
    }
    if queue is not None:
        options["queue"] = queue
    if priority is not None:
        options["priority"] = priority
    if task._get_app().conf.task_always_eager:
        return [task.apply_async(args, call_kwargs, **options).id for args in calls]
    if not calls:
        return []
    for args in calls:
        _check_arguments(task, args, call_kwargs)
    batch = _Batch(task, options, calls[0], call_kwargs)
    task_ids = [uuid() for _ in calls]
    app = batch.app
    with app.producer_or_acquire() as producer:
        channel = producer.channel
        if getattr(channel.connection, "driver_type", None) != "linkmq":
            raise TransportError(
                "send_many needs the linkmq+ broker; this app's broker is "
                f"{producer.connection.transport_cls}"
            )
        # All or none: a call that raises (an argument that does not serialize, a message
        # over max_message_bytes) writes none of its messages into the caller's transaction.
        with publish_all_or_none(connection):
            producer.maybe_declare(batch.queue, retry=True)
            if not batch.ignore_result:
                app.backend.on_task_call(producer, task_ids[0])
            for task_id, args in zip(task_ids, calls, strict=True):
                batch.publish(channel, task_id, args, call_kwargs)
    parent = batch.parent
    if parent and task.trail:
        for task_id in task_ids:
            parent.add_trail(task.AsyncResult(task_id))
    return task_ids


class _Batch:
    """What ``send_task`` works out per call and is the same for every call of a batch: the
    route, serializer, compression, delivery mode, priority, limits, the parent task, the
    origin and reply-to; ``publish`` builds and publishes one call's message with them."""

    def __init__(
        self,
        task: Task,
        options: dict[str, Any],
        first_args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        refused = [name for name in _REFUSED_OPTIONS if options.get(name) is not None]
        if refused:
            raise ValueError(
                f"send_many cannot apply {', '.join(refused)} of task {task.name!r} to a "
                "batch: use apply_async for each call"
            )
        self.task = task
        self.app = app = task._get_app()
        conf = app.conf
        self.time_limit = options.pop("time_limit", None)
        self.soft_time_limit = options.pop("soft_time_limit", None)
        self.ignore_result = options.pop("ignore_result", task.ignore_result)
        options = app.amqp.router.route(options, task.name, first_args, kwargs, task)
        self.queue = options.pop("queue")
        exchange = self.queue.exchange
        if exchange.type != "direct":
            raise ValueError(
                f"send_many routes {task.name!r} to queue {self.queue.name!r} on a "
                f"{exchange.type} exchange: only direct exchanges are supported"
            )
        self.serializer = options.pop("serializer", None) or conf.task_serializer
        self.compression = options.pop("compression", None) or conf.task_compression
        delivery_mode = (
            options.pop("delivery_mode", None)
            or exchange.delivery_mode
            or conf.task_default_delivery_mode
        )
        self.priority = options.pop("priority", None)
        # As send_task_message: the default exchange and the queue's name, unless the route
        # names both an exchange and a routing key.
        self.exchange = options.pop("exchange", None)
        self.routing_key = options.pop("routing_key", None)
        if not self.exchange or not self.routing_key:
            self.exchange, self.routing_key = "", self.queue.name
        elif not isinstance(self.exchange, str):
            self.exchange = self.exchange.name
        for name in _PUBLISH_PARAMETERS:
            options.pop(name, None)
        # What is left becomes message properties, as in send_task_message.
        self.options = options
        self.properties = {**options, "delivery_mode": maybe_delivery_mode(delivery_mode)}  # type: ignore[no-untyped-call]
        self.parent = app.current_worker_task
        self.root_id = self.parent_id = None
        if self.parent:
            request = self.parent.request
            self.root_id = request.root_id or request.id
            self.parent_id = request.id
            if conf.task_inherit_parent_priority and self.priority is None:
                self.priority = request.delivery_info.get("priority")
        self.origin = anon_nodename()
        self.reply_to = app.thread_oid
        self.dump_pydantic = task._dump_pydantic_arguments if self.serializer != "pickle" else None
        self.repr_levels = conf.task_repr_maxlevels
        self.kwargsrepr = saferepr(kwargs, app.amqp.kwargsrepr_maxsize, maxlevels=self.repr_levels)
        self.kwargs = kwargs

    def publish(
        self, channel: Any, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Publish the call ``task(*args, **kwargs)`` as task ``task_id`` on ``channel``."""
        task, amqp = self.task, self.app.amqp
        if self.dump_pydantic is not None:
            args, kwargs = self.dump_pydantic(args, kwargs)
        kwargsrepr = (
            self.kwargsrepr
            if kwargs is self.kwargs
            else saferepr(kwargs, amqp.kwargsrepr_maxsize, maxlevels=self.repr_levels)
        )
        headers, properties, body, _sent_event = amqp.as_task_v2(
            task_id,
            task.name,
            args,
            kwargs,
            reply_to=self.reply_to,
            time_limit=self.time_limit,
            soft_time_limit=self.soft_time_limit,
            root_id=self.root_id,
            parent_id=self.parent_id,
            shadow=task.shadow_name(args, kwargs, self.options),
            origin=self.origin,
            ignore_result=self.ignore_result,
            argsrepr=_argsrepr(args, amqp.argsrepr_maxsize, self.repr_levels),
            kwargsrepr=kwargsrepr,
        )
        properties.update(self.properties)
        route = {"exchange": self.exchange, "routing_key": self.routing_key}
        if signals.before_task_publish.receivers:
            signals.before_task_publish.send(
                sender=task.name,
                body=body,
                declare=[self.queue],
                headers=headers,
                properties=properties,
                retry_policy={},
                **route,
            )
        # As kombu's Producer.publish: serialize, encode text, compress.
        content_type, content_encoding, data = serialization.dumps(body, serializer=self.serializer)  # type: ignore[no-untyped-call]
        if isinstance(data, str):
            data = data.encode(content_encoding)
        if self.compression:
            data, headers["compression"] = compress(data, self.compression)  # type: ignore[no-untyped-call]
        message = channel.prepare_message(
            data, self.priority, content_type, content_encoding, headers, properties
        )
        channel.basic_publish(message, **route)
        if signals.after_task_publish.receivers:
            signals.after_task_publish.send(sender=task.name, body=body, headers=headers, **route)


def _argsrepr(args: tuple[Any, ...], maxsize: int, maxlevels: int) -> str:
    """Celery's ``argsrepr`` header for ``args`` (``saferepr``), at the cost of ``repr`` for
    plain numbers, booleans and None (what saferepr makes of them)."""
    if all(type(arg) in _PLAIN_REPR_TYPES for arg in args):
        text = repr(args)
        if len(text) < maxsize:
            return text
    return str(saferepr(args, maxsize, maxlevels=maxlevels))


def _calls(arguments: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Each item of ``arguments`` as a tuple, raising ``TypeError`` (naming the item's index)
    for one that is not a list or tuple, as Celery's ``apply_async`` refuses such ``args``:
    ``tuple()`` of a string, a dict or a set would silently make other calls (its characters,
    its keys)."""
    if isinstance(arguments, (str, bytes, Mapping)):
        raise TypeError(
            "send_many's arguments must be an iterable of argument lists or tuples, "
            f"not {type(arguments).__name__}"
        )
    calls = []
    for index, args in enumerate(arguments):
        if not isinstance(args, (list, tuple)):
            raise TypeError(
                f"send_many's arguments[{index}] must be a list or tuple of the call's "
                f"positional arguments, not {type(args).__name__}: {args!r:.80}"
            )
        calls.append(tuple(args))
    return calls


def _check_arguments(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """The signature check ``apply_async`` makes (``TypeError``), unless the task has
    ``typing=False``."""
    if not task.typing:
        return
    check = getattr(task, "__header__", None)
    if check is not None:
        check(*args, **kwargs)
