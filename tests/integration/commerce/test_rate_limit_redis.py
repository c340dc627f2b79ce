"""The Redis token bucket: burst, Retry-After that works when obeyed, monotone remaining, key TTL."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
import redis.asyncio as aioredis
from tests.conftest import require_service

from hexcity.commerce import RedisRateLimiter

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_redis_token_bucket() -> None:
    probe = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        probe.ping()
    except redis.RedisError as exc:
        require_service("Redis", False, f"{REDIS_URL}: {exc}")
    finally:
        probe.close()

    async def main() -> None:
        client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=2)
        prefix = f"hxt:rl:{uuid.uuid4().hex[:10]}:"
        limiter = RedisRateLimiter(client, prefix=prefix)
        try:
            decisions = [await limiter.acquire("user:42", capacity=5, refill_per_s=10) for _ in range(6)]
            assert [d.allowed for d in decisions] == [True] * 5 + [False]
            remaining = [d.remaining for d in decisions[:5]]
            assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0
            retry_after_s = decisions[-1].retry_after_s
            assert 0 < retry_after_s <= 0.1
            await asyncio.sleep(retry_after_s + 0.01)
            assert (await limiter.acquire("user:42", capacity=5, refill_per_s=10)).allowed
            ttl_ms = await client.pttl(limiter.key("user:42"))
            assert 900 < ttl_ms <= 1000  # 2 × (5 tokens / 10 per s)
            assert (await limiter.acquire("user:43", capacity=5, refill_per_s=10)).allowed  # own bucket
        finally:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    asyncio.run(main())
