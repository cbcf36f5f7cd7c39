"""Flower's broker view on linkmq+ (``flower_broker``), on a real database: the queue lengths
Flower's ``/api/queues/length`` and broker page show."""

from __future__ import annotations

import asyncio
from contextlib import closing

import kombu
import pytest

import link_message_queue  # noqa: F401  (registers linkmq+)
from link_message_queue.monitoring.flower_broker import LinkMqFlowerBroker


def test_flower_broker__lists_asked_application_and_workflow_queues_without_celery_internals(
    broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINK_MQ_QUEUE", "orders_queue")
    with kombu.Connection(broker_url) as connection:
        with closing(connection.SimpleQueue("invoices")) as invoices:
            for number in range(2):
                invoices.put(number)
        with closing(connection.SimpleQueue("celery@host.celery.pidbox")) as pidbox:
            pidbox.put("internal")

        broker = LinkMqFlowerBroker(broker_url)
        lengths = asyncio.run(broker.queues(["celery"]))

    # Asked by Flower (a worker's active queue, never declared here), an application queue
    # with its messages, and the workflow queue nothing was published to yet.
    by_name = {queue["name"]: queue["messages"] for queue in lengths}
    assert (by_name["celery"], by_name["invoices"], by_name["orders_queue"]) == (0, 2, 0)
    assert not [name for name in by_name if "pidbox" in name]
    assert [queue["name"] for queue in lengths] == sorted(by_name)
