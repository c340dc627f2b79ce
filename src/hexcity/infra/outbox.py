"""Transactional outbox (producer side) and idempotent consumer (consumer side).

Producer: :func:`add_to_outbox` inserts the event into ``outbox`` in the caller's transaction,
so the state change and the event commit or roll back together. :class:`OutboxRelay` publishes
unsent rows in id order and marks them sent — at-least-once: a crash between publish and the
mark republishes (the broker dedupes inside its window where it can, e.g. NATS ``Nats-Msg-Id``;
the consumer dedupes always). On PostgreSQL the relay locks its batch ``FOR UPDATE SKIP LOCKED``
so several relays never send the same row; on SQLite run a single relay. Several relays keep
per-key order only within a batch; run one relay where cross-batch per-key order matters.

Consumer: :func:`idempotent` records ``(consumer, event_id)`` in ``processed_events`` in the
same transaction as the handler's own writes, so a redelivered event is skipped and an effect
is applied once. :func:`idempotent_redis` is the variant for consumers without SQL state.

The SQL calls are synchronous (short transactions) and run on the event loop thread; on SQLite
the idempotent consumer serializes its transactions per engine (SQLite has a single writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hexcity.infra.bus.port import Delivery, EventBus, Handler
from hexcity.infra.logging import get_logger
from hexcity.infra.sql import outbox, processed_events, writer
from hexcity.kernel.events import Event

log = get_logger(__name__)

SessionHandler = Callable[[Delivery, Session], Awaitable[None]]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes; everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def add_to_outbox(session: Session, event: Event) -> None:
    """Record ``event`` for publishing, inside the caller's (uncommitted) transaction."""
    session.execute(
        insert(outbox).values(
            event_id=event.event_id,
            topic=event.topic,
            key=event.key,
            payload=event.payload,
            headers=event.headers,
            occurred_at_s=event.occurred_at_s,
            created_at=_now(),
            sent_at=None,
            attempts=0,
        )
    )


def outbox_age_s(engine: Engine, now: dt.datetime | None = None) -> float:
    """Age of the oldest unsent row in seconds (0 when the outbox is drained): alert on it."""
    with engine.connect() as conn:
        oldest = conn.execute(
            select(func.min(outbox.c.created_at)).where(outbox.c.sent_at.is_(None))
        ).scalar()
    if oldest is None:
        return 0.0
    return max(0.0, ((now or _now()) - _aware(oldest)).total_seconds())


def outbox_unsent(engine: Engine) -> int:
    """Number of rows not yet published (outbox depth)."""
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None)))
        return int(count.scalar() or 0)


@dataclass(slots=True)
class RelayStats:
    """Counters of one relay (export as metrics)."""

    published_total: int = 0
    failed_total: int = 0
    batches_total: int = 0


class OutboxRelay:
    """Publishes unsent outbox rows in id order, ``batch_size`` at a time; at-least-once."""

    def __init__(
        self,
        engine: Engine,
        bus: EventBus,
        *,
        batch_size: int = 100,
        poll_interval_s: float = 0.5,
        publish_timeout_s: float = 10.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.engine = engine
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.publish_timeout_s = publish_timeout_s
        self.stats = RelayStats()
        self._skip_locked = engine.dialect.name == "postgresql"

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were published and marked sent.

        A publish failure stops the batch (order): rows published before it are marked, the
        failed row's ``attempts`` is incremented, the rest wait for the next call. A crash (any
        BaseException) rolls the whole batch back, so it is republished.
        """
        query = select(outbox).where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id).limit(self.batch_size)
        if self._skip_locked:
            query = query.with_for_update(skip_locked=True)
        guard = _sqlite_writer_lock(self.engine)  # not while an idempotent handler holds the lock
        async with guard or contextlib.nullcontext():
            return await self._relay_batch(query)

    async def _relay_batch(self, query: Any) -> int:
        with Session(writer(self.engine)) as session, session.begin():
            rows = session.execute(query).all()
            sent: list[int] = []
            for row in rows:
                event = Event(
                    topic=row.topic,
                    key=row.key,
                    payload=dict(row.payload),
                    event_id=row.event_id,
                    occurred_at_s=float(row.occurred_at_s),
                    headers=dict(row.headers or {}),
                )
                try:
                    await asyncio.wait_for(self.bus.publish(event), self.publish_timeout_s)
                except Exception as exc:
                    self.stats.failed_total += 1
                    log.warning("outbox.publish_failed", event_id=row.event_id, error=repr(exc))
                    session.execute(
                        update(outbox).where(outbox.c.id == row.id).values(attempts=outbox.c.attempts + 1)
                    )
                    break
                sent.append(row.id)
            if sent:
                session.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(sent))
                    .values(sent_at=_now(), attempts=outbox.c.attempts + 1)
                )
        self.stats.batches_total += 1
        self.stats.published_total += len(sent)
        return len(sent)

    async def drain(self, max_batches: int = 1000) -> int:
        """Relay batches until one publishes nothing (the outbox is drained, or a publish keeps
        failing); returns how many rows were published. Used by the manual clock's quiesce step
        instead of :meth:`run`, at most ``max_batches`` batches per call."""
        total = 0
        for _ in range(max_batches):
            published = await self.relay_once()
            total += published
            if published == 0:
                break
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; sleeps ``poll_interval_s`` when a batch comes back empty."""
        while not stop.is_set():
            try:
                published = await self.relay_once()
            except Exception as exc:  # database down: retry after the poll interval
                log.warning("outbox.relay_failed", error=repr(exc))
                published = 0
            if published < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_interval_s)

    def age_s(self) -> float:
        """Outbox age in seconds (see :func:`outbox_age_s`)."""
        return outbox_age_s(self.engine)


class _AlreadyProcessed(Exception):
    pass


_SQLITE_LOCKS: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


def _sqlite_writer_lock(engine: Engine) -> asyncio.Lock | None:
    """SQLite has one writer: a second write transaction opened on the same event loop while the
    first awaits its handler would block the loop in the busy-timeout. Serialize them instead."""
    if engine.dialect.name != "sqlite":
        return None
    if engine not in _SQLITE_LOCKS:
        _SQLITE_LOCKS[engine] = asyncio.Lock()
    return _SQLITE_LOCKS[engine]


def idempotent(handler: SessionHandler, engine: Engine, consumer_name: str) -> Handler:
    """Wrap ``handler(delivery, session)`` so each event_id takes effect once per consumer.

    The dedupe row and the handler's writes share one transaction: a handler failure rolls both
    back (the event is redelivered and retried); a redelivery of a committed event is skipped.
    """

    async def wrapped(delivery: Delivery) -> None:
        event_id = delivery.event.event_id
        guard = _sqlite_writer_lock(engine)
        async with guard or contextlib.nullcontext():
            await _apply_once(delivery, event_id)

    async def _apply_once(delivery: Delivery, event_id: str) -> None:
        try:
            with Session(writer(engine)) as session, session.begin():
                seen = session.execute(
                    select(processed_events.c.event_id).where(
                        processed_events.c.consumer == consumer_name,
                        processed_events.c.event_id == event_id,
                    )
                ).first()
                if seen is not None:
                    return
                try:
                    session.execute(
                        insert(processed_events).values(
                            consumer=consumer_name, event_id=event_id, processed_at=_now()
                        )
                    )
                except IntegrityError:  # a concurrent delivery committed it first
                    raise _AlreadyProcessed from None
                await handler(delivery, session)
        except _AlreadyProcessed:
            return

    return wrapped


class DuplicateInFlightError(RuntimeError):
    """Another delivery of this event is being handled right now; retry later."""


def idempotent_redis(
    handler: Handler,
    client: Any,
    consumer_name: str,
    *,
    ttl_s: int = 7 * 86_400,
    lease_s: int = 60,
    prefix: str = "hexcity:processed",
) -> Handler:
    """Dedupe with Redis keys for consumers without SQL state (``redis.asyncio`` client).

    ``SET key processing NX EX lease_s`` claims the event; success turns it into ``done`` with
    ``EX ttl_s`` (the dedupe window); a failure deletes the claim so the retry runs. A delivery
    that finds ``processing`` raises :class:`DuplicateInFlightError` (and is retried after
    backoff) instead of being acked. Not atomic with the handler's side effects: a crash after
    the effect but before ``done`` re-applies it after ``lease_s`` — use :func:`idempotent` where
    that matters (money).
    """

    async def wrapped(delivery: Delivery) -> None:
        key = f"{prefix}:{consumer_name}:{delivery.event.event_id}"
        if not await client.set(key, "processing", nx=True, ex=lease_s):
            state = await client.get(key)
            if state in (b"done", "done"):
                return
            raise DuplicateInFlightError(key)
        try:
            await handler(delivery)
        except BaseException:
            await asyncio.shield(client.delete(key))
            raise
        await client.set(key, "done", ex=ttl_s)

    return wrapped
