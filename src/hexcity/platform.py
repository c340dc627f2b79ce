"""The shared runtime every module's HTTP surface uses: event bus and webhook intake.

Built by ``bootstrap.build_platform`` (the composition root) and started by the app's lifespan.
Webhook events are accepted into a bounded worker pool (backpressure: 429 when 80 % full), and
each is published once to the bus on topic ``webhooks`` (key ``<source>:<idempotency key>``,
header ``source``) with ``event_id`` derived from both, so a redelivery downstream dedupes on it.
A consumer group ``webhook-log`` counts them until business modules subscribe their own; its lag
is exported as ``bus_consumer_lag{topic="webhooks",group="webhook-log"}`` by a :class:`LagMonitor`.

Time: ``platform.clock`` is the wall clock, or with ``HEXCITY_CLOCK=manual`` a :class:`ManualClock`
("virtual time", docs/operations.md): then modules register periodic jobs with :meth:`Platform.every`
and drain steps with :meth:`Platform.add_quiescer` instead of running their own loops, and
:meth:`Platform.advance` (``POST /admin/v1/clock/advance``) moves time, runs due jobs and returns
once the system is quiet, so a seeded simulation gives the same outcome twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Engine

from hexcity.infra import get_logger
from hexcity.infra.auth import require
from hexcity.infra.bus import Delivery, EventBus, Subscription
from hexcity.infra.bus.lag import LagMonitor, LagSource
from hexcity.infra.concurrency import WorkerPool
from hexcity.infra.http import json_response
from hexcity.infra.metrics import once_per_registry
from hexcity.infra.migrate import upgrade
from hexcity.infra.outbox import OutboxRelay
from hexcity.infra.sql import DEFAULT_DATABASE_URL
from hexcity.infra.webhooks import IdempotencyStore, InMemoryIdempotencyStore, WebhookEvent
from hexcity.kernel import Clock, HexcityError, InvalidInput, ManualClock, SystemClock
from hexcity.kernel.events import Event

log = get_logger(__name__)

WEBHOOK_TOPIC = "webhooks"
LOG_GROUP = "webhook-log"
MAX_QUIESCE_ROUNDS = 1000  # per step of an advance
BUS_DRAIN_TIMEOUT_S = 30.0  # real seconds one bus drain may take (a stuck handler)

Job = Callable[[], Awaitable[object]]
Quiescer = Callable[[], Awaitable[int]]


class ClockNotManual(HexcityError):
    """The platform runs on the wall clock; only a manual clock can be advanced."""

    code = "ClockNotManual"
    status = 409


class ClockQuiesceTimeout(HexcityError):
    """The system did not become quiet (work kept appearing) within the bounded rounds."""

    code = "ClockQuiesceTimeout"
    status = 503


@runtime_checkable
class DrainableBus(Protocol):
    """A bus that can wait until every published event is handled (the in-process bus)."""

    async def drain(self, timeout_s: float = ...) -> int: ...


@dataclass
class _PeriodicJob:
    name: str
    interval_s: float
    job: Job
    anchor_s: float
    runs: int = 0  # due at anchor + (runs + 1) * interval

    @property
    def due_s(self) -> float:
        return self.anchor_s + (self.runs + 1) * self.interval_s


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
    clock: Literal["system", "manual"] = Field(
        default="system",
        description="system: the wall clock; manual: virtual time, moved by POST /admin/v1/clock/advance",
    )
    clock_start_s: float = Field(
        default=1767600000.0, ge=0, description="manual clock start, epoch s (2026-01-05T08:00:00Z)"
    )


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
    clock: Clock = field(init=False)
    _jobs: list[_PeriodicJob] = field(init=False, default_factory=list)
    _quiescers: list[tuple[str, Quiescer]] = field(init=False, default_factory=list)
    _advance_lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.clock = (
            ManualClock(self.settings.clock_start_s) if self.settings.clock == "manual" else SystemClock()
        )
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
            if not self.virtual:  # under a manual clock, advance() drives the relay
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

    # ---- virtual time ---------------------------------------------------------------------------
    @property
    def virtual(self) -> bool:
        """True when the platform runs on a manual clock (``HEXCITY_CLOCK=manual``)."""
        return isinstance(self.clock, ManualClock)

    def every(self, name: str, interval_s: float, job: Job) -> None:
        """Run ``job`` every ``interval_s`` of clock time, first at now + ``interval_s``.

        Used under a manual clock only (in system mode modules run their own loops and nothing
        calls the job). Due jobs run in registration order; names are unique.
        """
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        if any(j.name == name for j in self._jobs):
            raise ValueError(f"a periodic job named {name!r} is already registered")
        self._jobs.append(_PeriodicJob(name, float(interval_s), job, self.clock.now()))

    def add_quiescer(self, name: str, fn: Quiescer) -> None:
        """Add a drain step: ``fn()`` does pending work and returns how much (0 = nothing pending)."""
        if any(n == name for n, _ in self._quiescers):
            raise ValueError(f"a quiescer named {name!r} is already registered")
        self._quiescers.append((name, fn))

    async def advance(self, seconds: float, *, max_step_s: float = 1.0) -> dict[str, Any]:
        """Move the manual clock ``seconds`` forward and return once the system is quiet.

        First quiesces at the current time (work submitted before the call lands now), then steps
        forward at most ``max_step_s`` at a time, stopping at every job's due time; after each
        step it runs the due jobs (registration order) and quiesces again. Concurrent calls run
        one after the other. Raises :class:`ClockNotManual` on the wall clock.
        """
        clock = self.clock
        if not isinstance(clock, ManualClock):
            raise ClockNotManual("the platform runs on the system clock; start it with HEXCITY_CLOCK=manual")
        if not (seconds >= 0 and seconds != float("inf")):
            raise InvalidInput(f"seconds must be a finite number >= 0, got {seconds!r}")
        if not (max_step_s > 0 and max_step_s != float("inf")):
            raise InvalidInput(f"max_step_s must be a finite number > 0, got {max_step_s!r}")
        async with self._advance_lock:
            target = clock.now() + seconds
            steps = jobs_run = 0
            errors = [0]
            jobs_run += await self._run_due(clock.now(), errors)  # jobs registered in the past
            await self._quiesce()
            while clock.now() < target:
                now = clock.now()
                nxt = min([now + max_step_s, target, *(j.due_s for j in self._jobs)])
                clock.set(max(now, nxt))
                steps += 1
                jobs_run += await self._run_due(clock.now(), errors)
                await self._quiesce()
            return {"now": clock.now(), "steps": steps, "jobs_run": jobs_run, "job_errors": errors[0]}

    async def _run_due(self, now: float, errors: list[int]) -> int:
        ran = 0
        for job in list(self._jobs):
            if job.due_s > now:
                continue
            try:
                await job.job()
            except Exception:  # like the wall-clock loops: a failed run is logged, the next one comes
                errors[0] += 1
                log.exception("clock_job_failed", job=job.name)
            ran += 1
            # next due strictly after now (a job registered long ago does not run a burst)
            job.runs = max(job.runs + 1, int((now - job.anchor_s) // job.interval_s))
            while job.due_s <= now:
                job.runs += 1
        return ran

    async def _quiesce(self) -> int:
        """Drain until a full round does no work; returns the rounds it took."""
        for round_no in range(1, MAX_QUIESCE_ROUNDS + 1):
            work = 0
            if self.relay is not None:
                work += await self.relay.drain()
            if isinstance(self.bus, DrainableBus):
                try:
                    work += await self.bus.drain(BUS_DRAIN_TIMEOUT_S)
                except TimeoutError as exc:
                    raise ClockQuiesceTimeout(f"the event bus did not become idle: {exc}") from None
            work += await self._webhooks_quiet()
            for name, fn in self._quiescers:
                did = await fn()
                if did < 0:
                    raise ValueError(f"quiescer {name!r} returned {did} (must be >= 0)")
                work += did
            if work == 0:
                return round_no
        raise ClockQuiesceTimeout(
            f"the system did not become quiet after {MAX_QUIESCE_ROUNDS} rounds at t={self.clock.now()}"
        )

    async def _webhooks_quiet(self) -> int:
        """Wait for accepted webhooks to be published; returns how many were pending."""
        pool = self.webhook_pool
        pending = pool.depth + pool.in_flight
        spins = 0
        while pool.depth + pool.in_flight > 0 and not pool.closed:
            await asyncio.sleep(0 if spins < 50 else 0.001)
            spins += 1
        return pending


class AdvanceBody(BaseModel):
    """``POST /admin/v1/clock/advance``."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(gt=0, le=3600, description="clock seconds to move forward")
    max_step_s: float = Field(default=1.0, gt=0, le=60, description="longest single step")


def build_clock_router(platform: Platform) -> APIRouter:
    """``GET /admin/v1/clock`` and ``POST /admin/v1/clock/advance`` (scope ``admin``)."""
    router = APIRouter(prefix="/admin/v1", tags=["admin"], dependencies=[Depends(require("admin"))])

    @router.get("/clock")
    async def get_clock() -> Response:
        return json_response(
            {"mode": "manual" if platform.virtual else "system", "now": platform.clock.now()}
        )

    @router.post("/clock/advance")
    async def advance(body: AdvanceBody) -> Response:
        return json_response(await platform.advance(body.seconds, max_step_s=body.max_step_s))

    return router


@once_per_registry
def _consumed_counter(registry: CollectorRegistry) -> Counter:
    return Counter("webhook_events_consumed", "webhook events consumed from the bus", registry=registry)


def default_idempotency(settings: PlatformSettings) -> IdempotencyStore:
    return InMemoryIdempotencyStore(
        max_entries=settings.webhook_idempotency_entries, ttl_s=settings.webhook_idempotency_ttl_s
    )
