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
        assert keys == [f"{prefix}{{sku1}}:exp", f"{prefix}{{sku1}}:h"]  # no key per buyer or hold
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
