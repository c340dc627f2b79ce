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

import json
import random
import zlib
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


# --- helpers shared by the adapters (additions; the contract above is unchanged) ---------------

DLQ_SUFFIX = ".dlq"
# Deliveries past ``max_attempts`` that still run the handler because the earlier deliveries ended
# without a handler failure (consumer killed, ack lost on a dropped connection). Brokers count
# deliveries, not failures; this allowance keeps crashes from dead-lettering healthy events while
# still bounding a message that kills every consumer: it is tried at most
# ``max_attempts + CRASH_REDELIVERY_ALLOWANCE`` times, then dead-lettered.
CRASH_REDELIVERY_ALLOWANCE = 10
_MAX_ERROR_CHARS = 500


class BusClosedError(RuntimeError):
    """Raised by ``publish``/``subscribe`` on a bus that has been closed."""


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``: ``<topic>.dlq``."""
    return topic + DLQ_SUFFIX


def dead_letter(event: Event, error: BaseException, attempts: int) -> Event:
    """The DLQ copy of ``event``: same event_id, key and payload, headers say why and how often."""
    headers = dict(event.headers)
    headers["x-dlq-error"] = f"{type(error).__name__}: {error}"[:_MAX_ERROR_CHARS]
    headers["x-dlq-attempts"] = str(attempts)
    headers["x-dlq-original-topic"] = event.topic
    return Event(
        topic=dlq_topic(event.topic),
        key=event.key,
        payload=event.payload,
        event_id=event.event_id,
        occurred_at_s=event.occurred_at_s,
        headers=headers,
    )


def partition_of(key: str, partitions: int) -> int:
    """Stable key → partition (CRC-32, identical in every process; ``hash()`` is salted)."""
    return zlib.crc32(key.encode("utf-8")) % partitions


def encode_event(event: Event) -> bytes:
    """The envelope as compact JSON bytes (the wire format of the broker adapters)."""
    body = {
        "topic": event.topic,
        "key": event.key,
        "payload": event.payload,
        "event_id": event.event_id,
        "occurred_at_s": event.occurred_at_s,
        "headers": event.headers,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_event(data: bytes | str) -> Event:
    """Inverse of :func:`encode_event`."""
    body = json.loads(data)
    return Event(
        topic=str(body["topic"]),
        key=str(body["key"]),
        payload=dict(body["payload"]),
        event_id=str(body["event_id"]),
        occurred_at_s=float(body["occurred_at_s"]),
        headers={str(k): str(v) for k, v in dict(body.get("headers") or {}).items()},
    )
