"""Direct delivery: messages taken from a queue one at a time without kombu, each completed in
the caller's own database transaction (tick mode's step consumes the workflow queue so).

``Deliveries(keeper, queue).take()`` claims the next ready message of ``queue`` for the keeper's
owner (a lease of the keeper's ``lease_s`` seconds, counting the attempt) and hands out a
``Delivery``. While it is held the keeper (``leases.LeaseKeeper``, the transport's one lease
renewer) renews its lease, so a handler longer than the lease is not redelivered to another
consumer. It is settled by ``complete(connection)`` (deleted in the caller's transaction) or
``retry(delay_s)`` (handed back, visible again after the delay); a delivery left unsettled
comes back to the queue when its lease runs out, as a killed consumer's would."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from . import envelope
from .errors import LeaseLostError
from .leases import LeaseKeeper
from .rows import ClaimedRow


class Delivery:
    """One message taken by ``Deliveries.take``: its row ``id``, ``attempt`` (the delivery count,
    this delivery included: 1 the first time), the stored envelope text ``payload`` and, read from
    it on first use, ``headers``, ``content_type`` and ``body``."""

    def __init__(self, deliveries: Deliveries, row: ClaimedRow) -> None:
        self.id = row.id
        self.attempt = row.delivery_count
        self.payload = row.payload
        self._deliveries = deliveries
        self._envelope: dict[str, Any] | None = None

    @property
    def envelope(self) -> dict[str, Any]:
        """The stored kombu message (``transport.envelope``); raises ``EnvelopeError`` when the
        row does not hold one."""
        if self._envelope is None:
            self._envelope = envelope.decode(self.payload)
        return self._envelope

    @property
    def headers(self) -> dict[str, Any]:
        """The message headers (Celery's ``task``, ``id``, ``retries``, …); empty when there are
        none. Raises ``EnvelopeError`` as ``envelope`` does."""
        headers = self.envelope.get("headers")
        return headers if isinstance(headers, dict) else {}

    @property
    def content_type(self) -> object:
        """The body's content type as published (``application/json`` for Celery's JSON tasks),
        None when missing. Raises ``EnvelopeError`` as ``envelope`` does."""
        return self.envelope.get("content-type")

    @property
    def body(self) -> bytes:
        """The body's bytes, as the channel delivers them (kombu's ``Message.body``): a text body
        encoded as UTF-8, a binary one as published (for a Celery task, its serialized
        ``[args, kwargs, embed]``). Raises ``EnvelopeError`` when the envelope or its body
        cannot be read."""
        body = envelope.body_of(self.envelope)
        return body.encode("utf-8") if isinstance(body, str) else body

    def complete(self, connection: sa.Connection) -> None:
        """Delete the message in ``connection``'s transaction: it is gone when the caller commits,
        and still leased to this consumer (then back on the queue when the lease runs out) if the
        caller rolls back. Its lease is no longer renewed. Raises ``LeaseLostError`` (and deletes
        nothing) when the lease ran out and the message is no longer this consumer's."""
        deliveries = self._deliveries
        try:
            if not deliveries.store.messages.delete_leased(connection, self.id, deliveries.owner):
                raise LeaseLostError(
                    f"lost the lease on message {self.id} (attempt {self.attempt}) of queue "
                    f"{deliveries.queue!r}: it ran out and another consumer may have it"
                )
        finally:
            deliveries.keeper.forget([self.id])

    def let_go(self) -> None:
        """Stop renewing its lease without settling it (the step failed before it could, a lost
        database, say): the message comes back when the lease runs out. Harmless after
        ``complete`` or ``retry``."""
        self._deliveries.keeper.forget([self.id])

    def retry(self, delay_s: float = 0.0) -> bool:
        """Hand the message back in its old place in the queue, visible again ``delay_s`` seconds
        from now (by the database's clock) and redelivered with ``attempt + 1``. Committed at
        once. False when the lease had been lost (the message is someone else's: unchanged)."""
        deliveries = self._deliveries
        try:
            return deliveries.store.messages.release([self.id], deliveries.owner, delay_s) == 1
        finally:
            deliveries.keeper.forget([self.id])


class Deliveries:
    """A direct consumer of ``queue``: the owner, lease and store are ``keeper``'s
    (``keeper.owner``, ``keeper.lease_s`` seconds, ``keeper.store``). Database errors propagate
    as ``sqlalchemy.exc.SQLAlchemyError``."""

    def __init__(self, keeper: LeaseKeeper, queue: str) -> None:
        self.keeper = keeper
        self.store = keeper.store
        self.owner = keeper.owner
        self.queue = queue

    def take(self) -> Delivery | None:
        """Claim the next ready message (highest priority first, FIFO within one) and hold it:
        its lease is renewed by the keeper until it is completed or retried. None when nothing
        is ready."""
        leased_at = time.monotonic()
        rows = self.store.messages.claim(self.queue, self.owner, self.keeper.lease_s, 1)
        if not rows:
            return None
        self.keeper.hold([rows[0].id], leased_at)
        return Delivery(self, rows[0])
