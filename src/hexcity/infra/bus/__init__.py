"""Event streaming: one EventBus port, adapters for in-process, NATS JetStream and Redis Streams.

The broker adapters (``nats_jetstream``, ``redis_streams``) are imported from their modules so
that importing the port does not import the broker clients.
"""

from hexcity.infra.bus.lag import LagSource, read_lag
from hexcity.infra.bus.memory import BusFullError, InProcessBus
from hexcity.infra.bus.port import (
    BusClosedError,
    Delivery,
    EventBus,
    Handler,
    RetryPolicy,
    Subscription,
    dead_letter,
    dlq_topic,
)

__all__ = [
    "BusClosedError",
    "BusFullError",
    "Delivery",
    "EventBus",
    "Handler",
    "InProcessBus",
    "LagSource",
    "RetryPolicy",
    "Subscription",
    "dead_letter",
    "dlq_topic",
    "read_lag",
]
