"""Code that runs in child processes of the transport tests (spawned, so real processes)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import kombu

import link_message_queue  # noqa: F401  (registers linkmq+)


def hold_one_message(broker_url: str, queue: str, options: dict[str, Any], ready: Any) -> None:
    """Claim one message, say so, and never ack it: the test kills this process."""
    with kombu.Connection(broker_url, transport_options=options) as connection:
        simple = connection.SimpleQueue(queue)
        message = simple.get(timeout=10)
        ready.put(message.payload)
        time.sleep(600)


def consume_all(
    broker_url: str, queue: str, options: dict[str, Any], idle_s: float, results: Any
) -> None:
    """Consume and ack until the queue stays empty for ``idle_s``; report every body seen."""
    seen: list[Any] = []
    with kombu.Connection(broker_url, transport_options=options) as connection:
        simple = connection.SimpleQueue(queue)
        while True:
            try:
                message = simple.get(timeout=idle_s)
            except simple.Empty:
                break
            seen.append(message.payload)
            message.ack()
        simple.close()
    results.put(seen)


def publish_range(broker_url: str, queue: str, start: int, stop: int, done: Any) -> None:
    with kombu.Connection(broker_url) as connection:
        simple = connection.SimpleQueue(queue)
        for number in range(start, stop):
            simple.put(number)
        simple.close()
    done.put(stop - start)


def publish_to_exchange(
    broker_url: str, exchange: str, exchange_type: str, routing_key: str, done: Any
) -> None:
    with kombu.Connection(broker_url) as connection:
        producer = connection.Producer(exchange=kombu.Exchange(exchange, type="fanout"))
        producer.publish({"from": "another process"}, routing_key=routing_key, serializer="json")
    done.put("published")


def bind_when_told(broker_url: str, exchange: str, queue: str, told: Any, done: Any) -> None:
    """Connect and say so on ``done``, then wait for ``told`` and declare ``queue`` bound to
    the fanout ``exchange``; say so on ``done``."""
    with kombu.Connection(broker_url) as connection:
        channel = connection.default_channel
        done.put("connected")
        told.get(timeout=60)
        kombu.Queue(queue, kombu.Exchange(exchange, type="fanout"))(channel).declare()
        done.put("bound")


def take_all(broker_url: str, queue: str, idle_s: float, results: Any) -> None:
    """Consume without acknowledgement (no_ack) until the queue stays empty for ``idle_s``;
    report every body seen."""
    seen: list[Any] = []
    with kombu.Connection(broker_url) as connection:
        simple = connection.SimpleQueue(queue, no_ack=True)
        while True:
            try:
                seen.append(simple.get(timeout=idle_s).payload)
            except simple.Empty:
                break
        simple.close()
    results.put(seen)


def receive_one(broker_url: str, queue: str, options: dict[str, Any], results: Any) -> None:
    """Wait for one message on ``queue``; report its body and when it arrived."""
    with kombu.Connection(broker_url, transport_options=options) as connection:
        simple = connection.SimpleQueue(queue)
        message = simple.get(timeout=120)
        results.put((message.payload, time.time()))
        message.ack()
        simple.close()


def shift_clock(offset_s: float) -> None:
    """Make this process's ``time.time()`` run ``offset_s`` ahead of the host's (behind when
    negative), as on a host whose clock is off; ``time.monotonic()`` stays shared."""
    host_time = time.time
    time.time = lambda: host_time() + offset_s


def try_to_claim(
    broker_url: str,
    queue: str,
    options: dict[str, Any],
    results: Any,
    *,
    offset_s: float,
    wait_s: float,
) -> None:
    """With a clock ``offset_s`` off, wait ``wait_s`` for a message of ``queue``; report its
    body, or None if none came (the message stays unacked: the lease's owner decides)."""
    shift_clock(offset_s)
    with kombu.Connection(broker_url, transport_options=options) as connection:
        simple = connection.SimpleQueue(queue)
        try:
            results.put(simple.get(timeout=wait_s).payload)
        except simple.Empty:
            results.put(None)
        simple.close()


def receive_one_on_shifted_clock(
    broker_url: str, queue: str, options: dict[str, Any], offset_s: float, results: Any
) -> None:
    """With a clock ``offset_s`` off: say "listening", wait for one message on ``queue``, and
    report its body and the (host-wide) monotonic time it arrived."""
    shift_clock(offset_s)
    with kombu.Connection(broker_url, transport_options=options) as connection:
        simple = connection.SimpleQueue(queue)  # declared: a publish from now on reaches it
        results.put("listening")
        message = simple.get(timeout=60)
        results.put((message.payload, time.monotonic()))
        message.ack()
        simple.close()


def publish_on_shifted_clock(
    broker_url: str,
    queue: str,
    done: Any,
    *,
    offset_s: float,
    expiration_s: float,
    delivery_mode: int,
) -> None:
    """With a clock ``offset_s`` off, publish one message that lives ``expiration_s``
    (delivery_mode 1: through the transient batch)."""
    shift_clock(offset_s)
    with kombu.Connection(broker_url) as connection:
        simple = connection.SimpleQueue(queue)
        simple.put("short-lived", expiration=expiration_s, delivery_mode=delivery_mode)
        simple.close()
    done.put("published")


def consume_on_shifted_clock(
    broker_url: str,
    queue: str,
    options: dict[str, Any],
    results: Any,
    *,
    offset_s: float,
    expires_s: float,
    consume_s: float,
) -> None:
    """With a clock ``offset_s`` off, consume ``queue`` (declared to expire when unused for
    ``expires_s``) for ``consume_s``, saying "consuming" first."""
    shift_clock(offset_s)
    with kombu.Connection(broker_url, transport_options=options) as connection:
        simple = connection.SimpleQueue(queue, queue_opts={"expires": expires_s})
        results.put("consuming")
        with contextlib.suppress(simple.Empty):
            simple.get(timeout=consume_s)
        simple.close()
