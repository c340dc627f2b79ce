"""Flash sale against real Redis and PostgreSQL: exact stock under a stampede, faults, recovery.

S = 1,000 units against 100,000 concurrent attempts (40,000 buyers, per-user limit 2), sent as
pipelined reserve-script calls from 8 asyncio tasks. Faults injected: this test's Redis
connections are killed with CLIENT KILL mid-sale (the shared Redis is never restarted: replies of
scripts that ran are lost, exactly like a restart after the write); 5 % of "order received" events
are never published (crash between reservation and persistence); the order writer is killed
mid-batch and restarted; 10 % of payments are declined. After reconciliation: every reservation is
exactly one confirmed or released order, ``initial = remaining + held + confirmed``, nobody holds
more than the limit, and stock was never negative at any sampled moment.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
import zlib
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from tests.conftest import require_service

from hexcity.commerce import (
    Campaign,
    CommerceService,
    CommerceSettings,
    HoldState,
    LimitExceeded,
    OrderStatus,
    OrderWriter,
    PaymentDeclined,
    RateLimited,
    RedisRateLimiter,
    ScriptedGateway,
    Sku,
    SoldOut,
    SystemBusy,
    build_commerce_service,
    redis_client,
)
from hexcity.commerce.adapters.reservation_redis import RESERVE_LUA, RedisReservationEngine, decode_result
from hexcity.commerce.domain.catalog import Order
from hexcity.commerce.orders import ORDERS_TOPIC, WRITER_GROUP, order_event
from hexcity.infra.bus import InProcessBus
from hexcity.infra.sql import make_engine

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_URL = "postgresql+psycopg://postgres@localhost:5432/test"
STOCK, ATTEMPTS, BUYERS, LIMIT, TASKS, PIPELINE = 1_000, 100_000, 40_000, 2, 8, 250


def require_services() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_service("Redis", False, f"{REDIS_URL}: {exc}")
    finally:
        client.close()
    try:
        with make_engine(PG_URL).connect() as conn:
            conn.execute(text("select 1"))
    except OperationalError as exc:
        require_service("PostgreSQL", False, f"{PG_URL}: {exc}")


def declined(order_id: str) -> bool:
    return zlib.crc32(order_id.encode()) % 10 == 0


async def build(prefix: str, client_name: str) -> tuple[CommerceService, aioredis.Redis, InProcessBus]:
    pool = aioredis.BlockingConnectionPool.from_url(
        REDIS_URL,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
        max_connections=64,
        timeout=5,
        client_name=client_name,
    )
    client = aioredis.Redis(connection_pool=pool)
    bus = InProcessBus(max_events_per_topic=50_000)
    settings = CommerceSettings(
        key_prefix=prefix, reconcile_grace_s=0, user_capacity=1000, ip_capacity=100_000
    )
    service = build_commerce_service(
        settings,
        sql_engine=make_engine(PG_URL),
        bus=bus,
        redis=client,
        payments=ScriptedGateway(declines=declined),
    )
    return service, client, bus


async def seed(service: CommerceService, tag: str) -> str:
    now = time.time()
    await service.add_merchant(f"m{tag}", "Flash shop")
    await service.add_product(f"p{tag}", f"m{tag}", "Phone")
    await service.add_sku(Sku(f"k{tag}", f"p{tag}", f"m{tag}", 49_900, "EUR", STOCK))
    campaign = Campaign(f"c{tag}", f"k{tag}", f"m{tag}", now - 1, now + 3600, 100, "EUR", STOCK, LIMIT, 10)
    await service.schedule_campaign(campaign)
    return campaign.campaign_id


async def stampede(
    engine: RedisReservationEngine, client: aioredis.Redis, campaign_id: str
) -> dict[str, Any]:
    """100,000 attempts as pipelined script calls; returns the holds the clients were told about."""
    told: dict[str, str] = {}  # reservation id -> user
    outcomes: dict[str, int] = {}
    lost_replies = 0
    await client.script_load(RESERVE_LUA)
    attempts = list(range(ATTEMPTS))
    random.Random(7).shuffle(attempts)
    chunks = [attempts[i : i + PIPELINE] for i in range(0, ATTEMPTS, PIPELINE)]
    queue: asyncio.Queue[list[int]] = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)

    async def worker() -> None:
        nonlocal lost_replies
        while not queue.empty():
            chunk = queue.get_nowait()
            calls = []
            async with client.pipeline(transaction=False) as pipe:
                for i in chunk:
                    rid = f"r{campaign_id}x{i}"  # unique across runs: the orders table is shared
                    keys, args = engine.reserve_call(campaign_id, f"u{i % BUYERS}", 1, rid, None, 900_000)
                    pipe.evalsha(engine.reserve_script.sha, len(keys), *keys, *args)
                    calls.append((rid, f"u{i % BUYERS}"))
                try:
                    replies = await pipe.execute()
                except (redis.ConnectionError, redis.TimeoutError):
                    lost_replies += len(chunk)  # some of these may have reserved: the reconciler finds them
                    continue
            for (rid, user), encoded in zip(calls, replies, strict=True):
                result = decode_result(encoded)
                outcomes[result.status.value] = outcomes.get(result.status.value, 0) + 1
                if result.reserved:
                    told[rid] = user

    async def killer() -> None:
        await asyncio.sleep(0.15)
        admin = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        for entry in await admin.client_list():
            if entry.get("name") == client.connection_pool.connection_kwargs["client_name"]:
                await admin.client_kill_filter(_id=entry["id"])
        await admin.aclose()

    await asyncio.gather(*(worker() for _ in range(TASKS)), killer())
    return {"told": told, "outcomes": outcomes, "lost_replies": lost_replies}


async def sample_stock(engine: RedisReservationEngine, campaign_id: str, stop: asyncio.Event) -> list[int]:
    minima: list[int] = []
    while not stop.is_set():
        try:
            snap = await engine.snapshot(campaign_id)
        except Exception:  # the killer drops this connection too
            await asyncio.sleep(0.005)
            continue
        assert snap is not None and snap.balanced, snap
        minima.append(min(snap.shards))
        await asyncio.sleep(0.005)
    return minima


async def drain(bus: InProcessBus) -> None:
    for _ in range(3000):
        if bus.lag(ORDERS_TOPIC, WRITER_GROUP) == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("orders were not written")


def test_flash_sale_exact_under_stampede_and_faults() -> None:
    require_services()

    async def main() -> None:
        tag = uuid.uuid4().hex[:10]
        prefix = f"hxt:fs:{tag}:"
        service, client, bus = await build(prefix, f"hxt-commerce-{tag}")
        engine = service.engine
        assert isinstance(engine, RedisReservationEngine)
        try:
            campaign_id = await seed(service, tag)
            campaign = await service.campaign(campaign_id)
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_stock(engine, campaign_id, stop))
            started = time.perf_counter()
            sale = await stampede(engine, client, campaign_id)
            elapsed_s = time.perf_counter() - started
            stop.set()
            minima = await sampler
            print(
                f"stampede: {ATTEMPTS} attempts in {elapsed_s:.2f} s, outcomes {sale['outcomes']}, "
                f"lost replies {sale['lost_replies']}, samples {len(minima)}"
            )
            assert minima and min(minima) >= 0
            snap = await engine.snapshot(campaign_id)
            assert snap is not None and snap.balanced and snap.held + snap.remaining == STOCK
            holds = await engine.held(campaign_id, limit=5000)
            assert len(holds) == snap.held
            assert set(sale["told"]) <= {h.reservation_id for h in holds}
            per_user: dict[str, int] = {}
            for hold in holds:
                per_user[hold.user_id] = per_user.get(hold.user_id, 0) + hold.quantity
            assert max(per_user.values()) <= LIMIT
            if sale["lost_replies"] == 0:
                assert snap.remaining == 0 and len(holds) == STOCK

            # persistence with faults: 5 % of events never published, the writer killed mid-batch
            writer = OrderWriter(service.store, bus, batch_size=200, flush_s=0.05)
            await writer.start()
            published = 0
            for n, hold in enumerate(holds):
                if n % 20 == 7 or hold.reservation_id not in sale["told"]:
                    continue  # crash between reservation and persistence (or the reply was lost)
                order = Order(
                    hold.reservation_id,
                    campaign_id,
                    campaign.sku_id,
                    campaign.merchant_id,
                    hold.user_id,
                    1,
                    100,
                    100,
                    "EUR",
                    OrderStatus.RECEIVED,
                    hold.created_at_ms / 1000,
                )
                await bus.publish(order_event(order))
                published += 1
                if published == 300:
                    await asyncio.sleep(0.01)
                    await writer.abort()  # killed mid-batch
                    writer = OrderWriter(service.store, bus, batch_size=200, flush_s=0.05)
                    await writer.start()
            await drain(bus)
            dead = bus.retained(ORDERS_TOPIC + ".dlq")
            assert not dead, dead[0].headers
            report = await service.reconcile(campaign_id)  # re-publishes the lost orders
            assert report.republished == len(holds) - published
            await drain(bus)
            rows = service.store.list_orders(campaign_id=campaign_id, limit=10_000)
            assert len(rows) == len(holds) and {o.order_id for o in rows} == {h.reservation_id for h in holds}

            # the saga: pay everything, 10 % declined
            declines = 0
            for order in rows:
                try:
                    await service.pay(order.order_id)
                except PaymentDeclined:
                    declines += 1
            assert declines == sum(1 for o in rows if declined(o.order_id))
            final = await service.reconcile(campaign_id)
            assert final.balanced, final.differences
            snap = final.snapshot
            assert snap is not None and snap.held == 0
            assert snap.confirmed == len(rows) - declines and snap.remaining == STOCK - snap.confirmed
            units = service.store.units_by_status(campaign_id)
            assert units[OrderStatus.CONFIRMED] == snap.confirmed
            assert units[OrderStatus.RELEASED] == declines
            assert units[OrderStatus.RECEIVED] == units[OrderStatus.PAID] == 0
            for order in rows[:50]:
                outcome = await engine.get(campaign_id, order.order_id)
                expected = HoldState.RELEASED if declined(order.order_id) else HoldState.CONFIRMED
                assert outcome is not None and outcome.state is expected
            await writer.stop()
        finally:
            await service.stop()
            await bus.close()
            keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
            for i in range(0, len(keys), 1000):
                await client.unlink(*keys[i : i + 1000])
            await client.aclose()

    asyncio.run(asyncio.wait_for(main(), 120))


def test_purchase_path_over_redis_fails_closed_and_flag_counts() -> None:
    require_services()

    async def main() -> None:
        tag = uuid.uuid4().hex[:10]
        service, client, bus = await build(f"hxt:fp:{tag}:", f"hxt-commerce-{tag}")
        writer = OrderWriter(service.store, bus, batch_size=50, flush_s=0.02)
        await writer.start()
        try:
            campaign_id = await seed(service, tag)

            async def buy(i: int) -> str:
                for _ in range(100):
                    try:
                        await service.purchase(campaign_id, f"b{i % 700}", 1, client_ip=f"10.0.{i % 50}.1")
                        return "ok"
                    except SoldOut:
                        return "sold_out"
                    except LimitExceeded:
                        return "limit"
                    except RateLimited:  # the purchase gate: k × remaining in flight; retry
                        await asyncio.sleep(0.01)
                return "gave_up"

            results = await asyncio.gather(*(buy(i) for i in range(3000)))
            assert results.count("ok") == STOCK
            calls = service.engine_calls
            assert [await buy(i) for i in range(5000, 5200)] == ["sold_out"] * 200
            assert service.engine_calls == calls  # the local flag answered
            await drain(bus)
            assert len(service.store.list_orders(campaign_id=campaign_id, limit=5000)) == STOCK
            # Redis unreachable: fail closed quickly, never touch SQL stock
            service.flags.clear(campaign_id)
            dead = redis_client(CommerceSettings(redis_url="redis://127.0.0.1:1/0", redis_timeout_s=0.2))
            live_engine, live_limiter = service.engine, service.limiter
            service.engine = RedisReservationEngine(dead, prefix=f"hxt:fp:{tag}:")
            service.limiter = RedisRateLimiter(dead, prefix=f"hxt:fp:{tag}:")
            began = time.perf_counter()
            try:
                with pytest.raises(SystemBusy):
                    await service.purchase(campaign_id, "late", 1)
                assert time.perf_counter() - began < 0.5
            finally:
                service.engine, service.limiter = live_engine, live_limiter
            await dead.aclose()
        finally:
            await writer.stop()
            await service.stop()
            await bus.close()
            keys = [k async for k in client.scan_iter(match=f"hxt:fp:{tag}:*", count=1000)]
            for i in range(0, len(keys), 1000):
                await client.unlink(*keys[i : i + 1000])  # holds and rate-limit buckets of this test
            await client.aclose()

    asyncio.run(asyncio.wait_for(main(), 60))
