"""The EventBus port: what every adapter (in-process, NATS JetStream, Redis Streams) provides.

Semantics, the same for every adapter and pinned by one contract test suite:

* ``publish`` is durable once it returns (for the real brokers: the broker acknowledged it).
* A consumer *group* shares the work of a topic; each event goes to one member of the group.
  Different groups each get every event.
* Per-key ordering: events with the same key are handled one at a time, in publish order,
  within a group.
* The handler's success acks the event; an exception leads to redelivery after a backoff
  (exponential with full jitter, bounded by ``RetryPolicy``); after ``max_attempts`` failures the
  event goes to the dead-letter topic ``<topic>.dlq`` and is acked.
* Delivery is at-least-once: handlers must be idempotent (see the idempotent consumer).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from hexcity.kernel.events import Event


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries: exponential backoff with full jitter (AWS architecture blog, 2015)."""

    max_attempts: int = 3
    base_delay_s: float = 0.05
    max_delay_s: float = 2.0

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Delay before attempt ``attempt + 1`` (attempt counts from 1): uniform in [0, cap]."""
        cap = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        return rng.uniform(0.0, cap)


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event as a handler sees it, with how many times it has been tried (1 = first)."""

    event: Event
    attempt: int


Handler = Callable[[Delivery], Awaitable[None]]


class Subscription(Protocol):
    async def stop(self) -> None:
        """Stop taking new events; let an in-flight handler finish; do not ack unfinished work."""


class EventBus(Protocol):
    async def publish(self, event: Event) -> None:
        """Publish durably; raises on failure (the caller — e.g. the outbox relay — retries)."""

    async def subscribe(
        self, topic: str, group: str, handler: Handler, *, policy: RetryPolicy | None = None
    ) -> Subscription:
        """Start consuming ``topic`` as a member of ``group``."""

    async def close(self) -> None:
        """Stop every subscription and release connections."""
