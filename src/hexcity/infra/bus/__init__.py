"""Event streaming: one EventBus port, adapters for in-process, NATS JetStream and Redis Streams."""

from hexcity.infra.bus.port import Delivery, EventBus, Handler, RetryPolicy, Subscription

__all__ = ["Delivery", "EventBus", "Handler", "RetryPolicy", "Subscription"]
