"""The Redis waiting room shared by two service instances (two API processes) on one Redis.

Positions are handed out by Redis (one FIFO across both instances), a token issued by one instance
is honoured by the other, the admission rate and the ``k × remaining`` cap are enforced across both,
and a rate change made on one instance reaches the other.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from pydantic import SecretStr
from tests.conftest import require_service

from hexcity.commerce import Campaign, CommerceService, CommerceSettings, Sku, build_commerce_service
from hexcity.commerce.adapters.waiting_room import RedisWaitingRoom
from hexcity.commerce.errors import NotAdmittedYet, SystemBusy
from hexcity.infra.bus import InProcessBus
from hexcity.infra.sql import make_engine

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET = SecretStr("shared-admission-secret-0123456789")


def require_redis() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_service("Redis", False, f"{REDIS_URL}: {exc}")
    finally:
        client.close()


@asynccontextmanager
async def two_instances(
    tmp_path: Path, *, stock: int = 100, admissions_per_s: float = 1.0, max_queue: int = 1000
) -> AsyncIterator[tuple[CommerceService, CommerceService]]:
    require_redis()
    prefix = f"hxt:wr:{uuid.uuid4().hex[:12]}:"
    settings = CommerceSettings(
        key_prefix=prefix,
        waiting_room_enabled=True,
        admission_secret=SECRET,
        admissions_per_s=admissions_per_s,
        waiting_room_rate_refresh_s=0.0,
        max_queue=max_queue,
        user_capacity=100,
    )
    sql = make_engine(f"sqlite:///{tmp_path / 'commerce.db'}")  # both processes share the catalog
    clients = [aioredis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=2) for _ in range(2)]
    buses = [InProcessBus(), InProcessBus()]
    services = [
        build_commerce_service(settings, sql_engine=sql, bus=b, redis=c)
        for b, c in zip(buses, clients, strict=True)
    ]
    a, b = services
    now = time.time()
    await a.add_merchant("shop1", "Shop One")
    await a.add_product("p1", "shop1", "Phone")
    await a.add_sku(Sku("sku1", "p1", "shop1", 49_900, "EUR", 1_000))
    await a.schedule_campaign(
        Campaign("sale1", "sku1", "shop1", now - 10, now + 3600, 100, "EUR", stock, 1, 2)
    )
    try:
        yield a, b
    finally:
        for service in services:
            await service.stop()
        for bus in buses:
            await bus.close()
        keys = [k async for k in clients[0].scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await clients[0].delete(*keys)
        for client in clients:
            await client.aclose()


def test_positions_tokens_and_rate_are_shared_by_two_instances(tmp_path: Path) -> None:
    async def main() -> None:
        async with two_instances(tmp_path, admissions_per_s=1.0) as (a, b):
            assert isinstance(a.waiting_room, RedisWaitingRoom) and isinstance(
                b.waiting_room, RedisWaitingRoom
            )
            tickets = [await (a if i % 2 == 0 else b).join_queue("sale1", f"u{i}") for i in range(6)]
            assert [t.position for t in tickets] == [1, 2, 3, 4, 5, 6]  # one FIFO across both
            # 1 admission per second, starting one second's worth in: only position 1 (well under 2 s)
            assert [t.admitted for t in tickets] == [True, False, False, False, False, False]
            assert (await b.join_queue("sale1", "u4")).position == 5  # same place from the other process
            assert (await a.join_queue("sale1", "u5", token=tickets[5].token)).position == 6
            receipt = await b.purchase("sale1", "u0", 1, admission_token=tickets[0].token)  # token of A
            assert receipt.quantity == 1 and not receipt.replayed
            with pytest.raises(NotAdmittedYet):
                await a.purchase("sale1", "u5", 1, admission_token=tickets[5].token)
            await a.waiting_room.set_rate(1000.0)  # on A ...
            assert await b.waiting_room.current_rate() == 1000.0  # ... seen by B (refresh 0 s here)
            await asyncio.sleep(0.05)  # 1000/s × 0.05 s > the 6 in the queue
            receipt = await b.purchase("sale1", "u5", 1, admission_token=tickets[5].token)
            assert receipt.quantity == 1 and not receipt.replayed
            assert await a.waiting_room.admitted("sale1") == await b.waiting_room.admitted("sale1") == 6

    asyncio.run(asyncio.wait_for(main(), 30))


def test_cap_of_k_times_remaining_and_queue_limit_hold_across_instances(tmp_path: Path) -> None:
    async def main() -> None:
        # stock 2 and k = 2: at most 4 admitted (before anyone finishes) however fast the rate
        async with two_instances(tmp_path, stock=2, admissions_per_s=100_000.0, max_queue=7) as (a, b):
            tickets = [await (a if i % 2 == 0 else b).join_queue("sale1", f"u{i}") for i in range(7)]
            assert [t.position for t in tickets] == list(range(1, 8))
            assert await a.waiting_room.admitted("sale1") == 4
            assert tickets[0].admitted and not tickets[4].admitted and not tickets[6].admitted
            with pytest.raises(SystemBusy):
                await b.join_queue("sale1", "u7")  # the shared queue is full
            assert (await b.join_queue("sale1", "u6")).position == 7  # a queued buyer still gets in
            await b.purchase("sale1", "u1", 1, admission_token=tickets[1].token)  # one finished, 1 left
            # cap = finished 1 + 2 × remaining 1 = 3 < 4 admitted: nobody new gets in yet
            with pytest.raises(NotAdmittedYet):
                await a.purchase("sale1", "u4", 1, admission_token=tickets[4].token)
            assert await b.waiting_room.admitted("sale1") == 4

    asyncio.run(asyncio.wait_for(main(), 30))
