"""The shared runtime every module's HTTP surface uses: event bus and webhook intake.

Built by ``bootstrap.build_platform`` (the composition root) and started by the app's lifespan.
Webhook events are accepted into a bounded worker pool (backpressure: 429 when 80 % full), and
each is published once to the bus on topic ``webhooks`` (key ``<source>:<idempotency key>``,
header ``source``) with ``event_id`` derived from both, so a redelivery downstream dedupes on it.
A consumer group ``webhook-log`` counts them until business modules subscribe their own; its lag
is exported as ``bus_consumer_lag{topic="webhooks",group="webhook-log"}`` by a :class:`LagMonitor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Engine

from hexcity.infra.bus import Delivery, EventBus, Subscription
from hexcity.infra.bus.lag import LagMonitor, LagSource
from hexcity.infra.concurrency import WorkerPool
from hexcity.infra.metrics import once_per_registry
from hexcity.infra.migrate import upgrade
from hexcity.infra.outbox import OutboxRelay
from hexcity.infra.sql import DEFAULT_DATABASE_URL
from hexcity.infra.webhooks import IdempotencyStore, InMemoryIdempotencyStore, WebhookEvent
from hexcity.kernel.events import Event

WEBHOOK_TOPIC = "webhooks"
LOG_GROUP = "webhook-log"


class PlatformSettings(BaseSettings):
    """The bus and the webhook intake (environment prefix ``HEXCITY_``)."""

    model_config = SettingsConfigDict(env_prefix="HEXCITY_", extra="ignore")

    bus_url: str = Field(
        default="memory://",
        pattern=r"^(memory://|nats://.+|redis://.+)$",
        description="memory:// (embedded), nats://host:4222 (JetStream) or redis://host:6379/0 (Streams)",
    )
    webhook_workers: int = Field(default=50, ge=1, le=10_000)
    webhook_queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    webhook_idempotency_entries: int = Field(default=1_000_000, ge=1)
    webhook_idempotency_ttl_s: float = Field(default=86_400.0, gt=0)
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="sqlite:///var/hexcity.db (embedded), postgresql+psycopg://... or mysql+pymysql://...",
    )
    outbox_poll_interval_s: float = Field(default=0.2, gt=0, le=10)


@dataclass
class ModuleRuntime:
    """A business module as the app runs it: its HTTP routers and what runs while it serves.

    ``lifespan`` (entered after the platform, left before it) starts the module's loops;
    ``ready`` says whether it can take traffic (readiness probe).
    """

    name: str
    routers: list[APIRouter] = field(default_factory=list)
    lifespan: Callable[[], AbstractAsyncContextManager[Any]] | None = None
    ready: Callable[[], bool] = lambda: True


def webhook_event(item: WebhookEvent) -> Event:
    """The bus event for an accepted webhook: stable id from (source, idempotency key)."""
    event_id = hashlib.sha256(f"{item.source}\x00{item.key}".encode()).hexdigest()[:32]
    return Event(
        topic=WEBHOOK_TOPIC,
        key=f"{item.source}:{item.key}",
        headers={"source": item.source},
        payload=item.payload,
        event_id=event_id,
        occurred_at_s=item.received_at_s,
    )


@dataclass
class Platform:
    """Bus, webhook pool and idempotency store; ``async with`` runs the pool and a log consumer."""

    bus: EventBus
    idempotency: IdempotencyStore
    settings: PlatformSettings = field(default_factory=PlatformSettings)
    registry: CollectorRegistry = REGISTRY
    engine: Engine | None = None  # the SQL database; its outbox is relayed to the bus while running
    webhook_pool: WorkerPool[WebhookEvent] = field(init=False)
    _stack: AsyncExitStack = field(init=False)
    _subscriptions: list[Subscription] = field(init=False, default_factory=list)
    _lag_monitor: LagMonitor | None = field(init=False, default=None)
    relay: OutboxRelay | None = field(init=False, default=None)
    _relay_stop: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _relay_task: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.webhook_pool = WorkerPool(
            "webhooks",
            self.settings.webhook_workers,
            self.settings.webhook_queue_size,
            self._publish,
            registry=self.registry,
        )
        self._consumed = _consumed_counter(self.registry)
        if isinstance(self.bus, LagSource):  # every adapter; a test double may not be
            self._lag_monitor = LagMonitor(self.bus, [(WEBHOOK_TOPIC, LOG_GROUP)], self.registry)

    async def _publish(self, item: WebhookEvent) -> None:
        await self.bus.publish(webhook_event(item))

    async def _log_consumer(self, delivery: Delivery) -> None:
        del delivery  # counted only: sources are caller-chosen, so no per-source label (cardinality)
        self._consumed.inc()

    async def __aenter__(self) -> Platform:
        self._stack = AsyncExitStack()
        await self._stack.enter_async_context(self.webhook_pool)
        self._subscriptions.append(await self.bus.subscribe(WEBHOOK_TOPIC, LOG_GROUP, self._log_consumer))
        if self._lag_monitor is not None:  # first refresh now; stopped first on exit (LIFO)
            await self._stack.enter_async_context(self._lag_monitor)
        if self.engine is not None:
            url = self.engine.url.render_as_string(hide_password=False)
            await asyncio.to_thread(upgrade, url)  # the platform's tables (outbox, processed events)
            poll_s = self.settings.outbox_poll_interval_s
            self.relay = OutboxRelay(self.engine, self.bus, poll_interval_s=poll_s)
            self._relay_stop.clear()
            self._relay_task = asyncio.create_task(self.relay.run(self._relay_stop), name="outbox-relay")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._relay_task is not None:
            self._relay_stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
            self._relay_task = None
        await self._stack.aclose()  # stops the lag monitor, drains the pool (events are published)
        for sub in self._subscriptions:
            await sub.stop()
        await self.bus.close()


@once_per_registry
def _consumed_counter(registry: CollectorRegistry) -> Counter:
    return Counter("webhook_events_consumed", "webhook events consumed from the bus", registry=registry)


def default_idempotency(settings: PlatformSettings) -> IdempotencyStore:
    return InMemoryIdempotencyStore(
        max_entries=settings.webhook_idempotency_entries, ttl_s=settings.webhook_idempotency_ttl_s
    )
