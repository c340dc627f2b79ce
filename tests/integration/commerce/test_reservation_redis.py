"""Redis-only behaviour of the reservation engine beyond the shared contract: one HASH per SKU,
records purged ``retention_s`` after their expiry, and the key layout of the reserve script."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
import redis.asyncio as aioredis
from tests.conftest import require_service

from hexcity.commerce.adapters.reservation_redis import RedisReservationEngine
from hexcity.commerce.domain.reservation import HoldState, ReserveStatus

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"


def run(test: object) -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_service("Redis", False, f"{REDIS_URL}: {exc}")
    finally:
        client.close()

    async def main() -> None:
        aclient = aioredis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=2)
        prefix = f"hxt:res:{uuid.uuid4().hex[:12]}:"
        try:
            await test(aclient, prefix)  # type: ignore[operator]
        finally:
            keys = [k async for k in aclient.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await aclient.delete(*keys)
            await aclient.aclose()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_one_hash_per_sku_and_finished_records_are_purged_after_retention() -> None:
    async def scenario(client: aioredis.Redis, prefix: str) -> None:
        engine = RedisReservationEngine(client, prefix=prefix, retention_s=0.2)
        await engine.preheat("sku1", 4, shards=2, per_user_limit=2)
        got = await engine.reserve("sku1", "u1", 1, reservation_id="r1", ttl_s=0.3)
        assert (got.status, got.remaining) == (ReserveStatus.RESERVED, 3)
        assert await engine.reserve("sku1", "u2", 1, reservation_id="r2", ttl_s=0.05)
        keys = sorted([k async for k in client.scan_iter(match=f"{prefix}*")])
        assert keys == [
            f"{prefix}{{sku1}}:h",
            f"{prefix}{{sku1}}:q:300",
            f"{prefix}{{sku1}}:q:50",
        ]  # per TTL, not per hold
        again = await engine.reserve("sku1", "u1", 2, reservation_id="r1", ttl_s=0.3)  # a retried id
        assert (again.status, again.reservation_id, again.remaining) == (ReserveStatus.RESERVED, "r1", 2)
        assert await engine.release("sku1", "r1") is True
        await asyncio.sleep(0.1)
        assert await engine.expire_due("sku1") == ["r2"]
        r1, r2 = await engine.get("sku1", "r1"), await engine.get("sku1", "r2")
        assert r1 is not None and r1.state is HoldState.RELEASED  # readable during the retention
        assert r2 is not None and r2.state is HoldState.RELEASED
        await asyncio.sleep(0.6)  # past expiry + retention of both (purged at expiry + 0.2 s)
        assert await engine.expire_due("sku1") == []
        assert await engine.get("sku1", "r1") is None and await engine.get("sku1", "r2") is None
        assert await client.zcard(f"{prefix}{{sku1}}:done") == 0
        snap = await engine.snapshot("sku1")
        assert snap is not None and (snap.remaining, snap.held, snap.confirmed) == (4, 0, 0) and snap.balanced

    run(scenario)


def test_left_counter_matches_the_shards_through_fallback_release_and_expiry() -> None:
    """The reserve script decides sold out / insufficient from the ``left`` field alone (one
    HMGET on refusals); every script must keep it equal to the sum of the shards."""

    async def scenario(client: aioredis.Redis, prefix: str) -> None:
        engine = RedisReservationEngine(client, prefix=prefix)
        h = f"{prefix}{{sku2}}:h"

        async def left_and_shards() -> tuple[int, tuple[int, ...]]:
            snap = await engine.snapshot("sku2")
            assert snap is not None and snap.balanced
            return int(str(await client.hget(h, "left"))), snap.shards

        await engine.preheat("sku2", 10, shards=3, per_user_limit=5)  # 4 + 3 + 3
        got = [await engine.reserve("sku2", f"u{i}", 3, reservation_id=f"r{i}", ttl_s=0.05) for i in range(3)]
        assert [g.status for g in got] == [ReserveStatus.RESERVED] * 3 and got[-1].remaining == 1
        left, shards = await left_and_shards()
        assert left == sum(shards) == 1
        holds = [await engine.get("sku2", f"r{i}") for i in range(3)]
        assert any(h is not None and len(h.allocation) > 1 for h in holds)  # at least one fell back
        short = await engine.reserve("sku2", "u9", 2, reservation_id="r9")
        assert (short.status, short.remaining) == (ReserveStatus.INSUFFICIENT, 1)
        assert await engine.release("sku2", "r0") is True
        left, shards = await left_and_shards()
        assert left == sum(shards) == 4
        await asyncio.sleep(0.1)
        assert sorted(await engine.expire_due("sku2")) == ["r1", "r2"]
        left, shards = await left_and_shards()
        assert left == sum(shards) == 10 and shards == (4, 3, 3)

    run(scenario)


def test_finished_holds_at_the_queue_head_do_not_hide_due_ones() -> None:
    """The hold queue drops confirmed/released holds lazily: a sweep with ``limit`` = 2 must
    still release the 2 due holds queued behind 3 confirmed ones."""

    async def scenario(client: aioredis.Redis, prefix: str) -> None:
        engine = RedisReservationEngine(client, prefix=prefix)
        await engine.preheat("sku3", 10, shards=2, per_user_limit=1)
        for i in range(5):
            assert (await engine.reserve("sku3", f"u{i}", 1, reservation_id=f"r{i}", ttl_s=0.2)).reserved
        for i in range(3):
            assert (await engine.confirm("sku3", f"r{i}")).value == "confirmed"
        assert [h.reservation_id for h in await engine.held("sku3")] == ["r3", "r4"]
        await asyncio.sleep(0.3)
        assert await engine.expire_due("sku3", limit=2) == ["r3", "r4"]
        assert await engine.held("sku3") == []
        assert await client.llen(f"{prefix}{{sku3}}:q:200") == 0
        snap = await engine.snapshot("sku3")
        assert snap is not None and snap.balanced and (snap.remaining, snap.held, snap.confirmed) == (7, 0, 3)

    run(scenario)
