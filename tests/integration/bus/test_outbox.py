"""Transactional outbox + idempotent consumer on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, func, insert, select, text
from sqlalchemy.orm import Session
from tests.conftest import require_service

from hexcity.infra.bus import Delivery, InProcessBus
from hexcity.infra.outbox import OutboxRelay, add_to_outbox, idempotent, outbox_age_s, outbox_unsent
from hexcity.infra.sql import make_engine, metadata, outbox
from hexcity.kernel.events import Event

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

app_md = MetaData()
orders = Table(
    "orders",
    app_md,
    Column("id", String(64), primary_key=True),
    Column("status", String(32), nullable=False),
)
effects = Table(
    "effects",
    app_md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh database: a temp SQLite file, or a unique PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
        metadata.create_all(eng)
        app_md.create_all(eng)
        yield eng
        eng.dispose()
        return
    base = make_engine(PG_URL)
    try:
        with base.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        base.dispose()
        require_service("PostgreSQL", False, f"{PG_URL}: {exc}")
    schema = f"hxt_outbox_{uuid.uuid4().hex[:10]}"
    with base.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = base.execution_options(schema_translate_map={None: schema})
    metadata.create_all(eng)
    app_md.create_all(eng)
    try:
        yield eng
    finally:
        with base.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        base.dispose()


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def _place_order(engine: Engine, order_id: str, topic: str, *, fail: bool = False) -> Event:
    event = Event(topic=topic, key=order_id, payload={"order_id": order_id, "status": "placed"})
    with Session(engine) as session, session.begin():
        session.execute(insert(orders).values(id=order_id, status="placed"))
        add_to_outbox(session, event)
        if fail:
            raise RuntimeError("business rule violated after the writes")
    return event


def test_state_change_and_event_commit_together(engine: Engine) -> None:
    _place_order(engine, "o1", "orders")
    assert _count(engine, orders) == 1
    assert outbox_unsent(engine) == 1
    assert outbox_age_s(engine) >= 0.0


def test_rollback_leaves_neither(engine: Engine) -> None:
    with pytest.raises(RuntimeError):
        _place_order(engine, "o1", "orders", fail=True)
    assert _count(engine, orders) == 0
    assert _count(engine, outbox) == 0


def test_relay_publishes_once_and_marks_sent(engine: Engine) -> None:
    async def scenario() -> None:
        bus = InProcessBus()
        got: list[Event] = []

        async def handler(d: Delivery) -> None:
            got.append(d.event)

        await bus.subscribe("orders", "g", handler)
        sent = [_place_order(engine, f"o{i}", "orders") for i in range(5)]
        relay = OutboxRelay(engine, bus, batch_size=2, poll_interval_s=0.01)
        assert outbox_age_s(engine) >= 0.0
        published = [await relay.relay_once() for _ in range(4)]
        assert published == [2, 2, 1, 0]
        await asyncio.wait_for(_until(lambda: len(got) == 5), 5)
        assert [e.event_id for e in got] == [e.event_id for e in sent]
        assert got[0].payload == sent[0].payload and got[0].key == "o0"
        assert outbox_unsent(engine) == 0 and outbox_age_s(engine) == 0.0
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).where(outbox.c.sent_at.is_(None))).scalar() == 0
        await bus.close()

    asyncio.run(scenario())


class Crash(BaseException):
    """The relay process dies (not an ordinary publish error)."""


class CrashAfterPublish:
    """Publishes for real, then the relay 'dies' before it can mark the row sent."""

    def __init__(self, inner: InProcessBus, crash_on: int) -> None:
        self.inner = inner
        self.crash_on = crash_on
        self.calls = 0

    async def publish(self, event: Event) -> None:
        await self.inner.publish(event)
        self.calls += 1
        if self.calls == self.crash_on:
            raise Crash

    async def subscribe(self, *a: Any, **kw: Any) -> Any:
        return await self.inner.subscribe(*a, **kw)

    async def close(self) -> None:
        await self.inner.close()


def test_relay_crash_between_publish_and_mark_republishes_and_consumer_dedupes(engine: Engine) -> None:
    async def scenario() -> None:
        bus = InProcessBus()
        calls: Counter[str] = Counter()

        async def apply(d: Delivery, session: Session) -> None:
            calls[d.event.event_id] += 1
            session.execute(insert(effects).values(event_id=d.event.event_id))

        await bus.subscribe("orders", "billing", idempotent(apply, engine, "billing"))
        events = [_place_order(engine, f"o{i}", "orders") for i in range(4)]
        with pytest.raises(Crash):
            await OutboxRelay(engine, CrashAfterPublish(bus, crash_on=3), batch_size=10).relay_once()
        assert outbox_unsent(engine) == 4  # the crash rolled the marks back
        assert await OutboxRelay(engine, bus, batch_size=10).relay_once() == 4
        await asyncio.wait_for(_until(lambda: sum(calls.values()) >= 4 and _count(engine, effects) == 4), 5)
        await asyncio.sleep(0.1)
        assert len(bus.retained("orders")) == 0 or bus.lag("orders", "billing") == 0
        with engine.connect() as conn:
            per_event = dict(
                conn.execute(select(effects.c.event_id, func.count()).group_by(effects.c.event_id)).all()  # type: ignore[arg-type]
            )
        assert per_event == {e.event_id: 1 for e in events}, "an effect was applied twice or lost"
        await bus.close()

    asyncio.run(scenario())


def test_idempotent_handler_failure_rolls_back_its_dedupe_row(engine: Engine) -> None:
    async def scenario() -> None:
        async def boom(d: Delivery, session: Session) -> None:
            session.execute(insert(effects).values(event_id=d.event.event_id))
            raise RuntimeError("downstream down")

        async def ok(d: Delivery, session: Session) -> None:
            session.execute(insert(effects).values(event_id=d.event.event_id))

        delivery = Delivery(event=Event(topic="t", key="k", payload={}), attempt=1)
        with pytest.raises(RuntimeError):
            await idempotent(boom, engine, "c")(delivery)
        assert _count(engine, effects) == 0
        await idempotent(ok, engine, "c")(delivery)
        await idempotent(ok, engine, "c")(delivery)
        await idempotent(ok, engine, "other-consumer")(delivery)
        assert _count(engine, effects) == 2

    asyncio.run(scenario())


def test_two_relays_on_postgresql_never_double_send(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL-only; SQLite runs a single relay")

    class CountingBus:
        def __init__(self) -> None:
            self.sent: Counter[str] = Counter()
            self.by_relay: Counter[str] = Counter()

        def for_relay(self, name: str) -> Any:
            outer = self

            class _Bus:
                async def publish(self, event: Event) -> None:
                    await asyncio.sleep(0.001)  # let the other relay run while we hold our batch
                    outer.sent[event.event_id] += 1
                    outer.by_relay[name] += 1

                async def subscribe(self, *a: Any, **kw: Any) -> Any:
                    raise NotImplementedError

                async def close(self) -> None:
                    return None

            return _Bus()

    async def scenario() -> None:
        events = [_place_order(engine, f"o{i}", "orders") for i in range(120)]
        counting = CountingBus()
        relays = [OutboxRelay(engine, counting.for_relay(n), batch_size=10) for n in ("a", "b")]

        async def drain(relay: OutboxRelay) -> None:
            while outbox_unsent(engine):
                await relay.relay_once()
                await asyncio.sleep(0)

        await asyncio.wait_for(asyncio.gather(*(drain(r) for r in relays)), 30)
        assert set(counting.sent) == {e.event_id for e in events}
        assert max(counting.sent.values()) == 1, "a row was sent by both relays"
        assert counting.by_relay["a"] > 0 and counting.by_relay["b"] > 0

    asyncio.run(scenario())


async def _until(pred: Any) -> None:
    while not pred():
        await asyncio.sleep(0.01)


def test_redis_idempotent_consumer_skips_done_and_retries_failed() -> None:
    import redis.asyncio as aioredis

    from hexcity.infra.outbox import DuplicateInFlightError, idempotent_redis

    async def scenario() -> None:
        client = aioredis.Redis.from_url(
            "redis://127.0.0.1:6379/0", socket_timeout=3, socket_connect_timeout=3
        )
        try:
            await asyncio.wait_for(client.ping(), 3)
        except Exception as exc:
            await client.aclose()
            require_service("Redis", False, str(exc))
        prefix = f"hxt:processed:{uuid.uuid4().hex[:8]}"
        applied: list[str] = []
        fail = [True]

        async def handler(d: Delivery) -> None:
            if fail[0]:
                raise RuntimeError("first try fails")
            applied.append(d.event.event_id)

        wrapped = idempotent_redis(handler, client, "gps", ttl_s=60, lease_s=5, prefix=prefix)
        delivery = Delivery(event=Event(topic="t", key="k", payload={}), attempt=1)
        try:
            with pytest.raises(RuntimeError):
                await wrapped(delivery)  # failure releases the claim
            fail[0] = False
            await wrapped(delivery)
            await wrapped(delivery)  # duplicate: skipped
            assert applied == [delivery.event.event_id]
            key = f"{prefix}:gps:other"
            await client.set(key, "processing", ex=5)
            other = Delivery(event=Event(topic="t", key="k", payload={}, event_id="other"), attempt=1)
            with pytest.raises(DuplicateInFlightError):
                await wrapped(other)
            assert 0 < await client.ttl(f"{prefix}:gps:{delivery.event.event_id}") <= 60
        finally:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    asyncio.run(scenario())
