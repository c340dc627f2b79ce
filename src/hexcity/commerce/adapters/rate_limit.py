"""Token-bucket ``RateLimiter`` adapters: in-process (default) and Redis (one Lua script per call).

Redis keys: ``<prefix>{<key>}:rate_limit`` (the caller's key, e.g. ``user:42``, is the hash tag),
HASH ``tokens ts``; time is Redis ``TIME`` (never the gateway's clock); PEXPIRE = 2 × the time of
a full refill. Connection errors raise ``SystemBusy``; the service decides to fail open or closed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from hexcity.commerce.domain.admission import TokenBucket, validate_bucket
from hexcity.commerce.errors import SystemBusy
from hexcity.commerce.ports import RateDecision

__all__ = ["TOKEN_BUCKET_LUA", "MemoryRateLimiter", "RedisRateLimiter"]

# KEYS: bucket; ARGV: capacity, refill_per_s, tokens → {allowed, remaining, retry_after_s}
TOKEN_BUCKET_LUA = """
local cap, rate, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1]) or cap
local ts = tonumber(v[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local allowed, retry = 0, 0
if tokens >= want then tokens = tokens - want allowed = 1 else retry = (want - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(2000 * cap / rate))
return {allowed, math.floor(tokens), string.format('%.6f', retry)}
"""


class MemoryRateLimiter:
    """Buckets in a bounded LRU dict (``max_keys``); ``clock`` returns seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    async def acquire(self, key: str, *, capacity: int, refill_per_s: float, tokens: int = 1) -> RateDecision:
        validate_bucket(capacity, refill_per_s, tokens)
        now_s = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(capacity, refill_per_s, float(capacity), now_s)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        bucket.capacity, bucket.refill_per_s = capacity, refill_per_s
        allowed, remaining, retry_after_s = bucket.take(now_s, tokens)
        return RateDecision(allowed, remaining, retry_after_s)


class RedisRateLimiter:
    """Buckets in Redis; ``client`` needs ``decode_responses=True`` and a socket timeout."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = "hexcity:commerce:") -> None:
        self._prefix = prefix
        self._script = client.register_script(TOKEN_BUCKET_LUA)

    def key(self, key: str) -> str:
        return f"{self._prefix}{{{key}}}:rate_limit"

    async def acquire(self, key: str, *, capacity: int, refill_per_s: float, tokens: int = 1) -> RateDecision:
        validate_bucket(capacity, refill_per_s, tokens)
        try:
            allowed, remaining, retry = await self._script(
                keys=[self.key(key)], args=[capacity, refill_per_s, tokens]
            )
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            raise SystemBusy(f"rate limiter unreachable: {type(exc).__name__}") from exc
        return RateDecision(int(allowed) == 1, int(remaining), float(retry))
