"""Redis ``ReservationEngine``: one Lua script per decision (commerce.md §2.5–2.7, §2.10).

Keys of SKU ``s`` under prefix ``p`` (every key carries the hash tag ``{s}``, so all keys of a SKU
live in one Redis Cluster slot and the scripts never cross slots):

* ``p{s}:meta`` — HASH ``initial shards limit held confirmed``;
* ``p{s}:s:<i>`` — the stock counter of shard ``i`` (``0 <= i < shards``);
* ``p{s}:u:<user>`` — units the user holds or bought (the per-user limit);
* ``p{s}:r:<reservation>`` — HASH ``user qty alloc state created expires`` (``alloc`` =
  ``shard:units,...``), PEXPIRE = hold TTL + ``retention_s`` (kept after release/confirm so the
  reconciler can read the outcome);
* ``p{s}:exp`` — ZSET reservation → expiry (ms, Redis ``TIME``) of live holds;
* ``p{s}:i:<user>|<key>`` — the encoded first result of an idempotency key (same PEXPIRE).

The reserve script reads every shard with one MGET, refuses when the total is short (so nobody is
told "sold out" while a shard still has stock), then draws from ``crc32(user) % shards`` onwards.
Sharding inside one slot keeps a hot SKU's per-call work O(shards) and lets the script fall back
atomically; spreading one SKU over several Redis nodes would need per-shard tags and a per-user
limit that crosses slots, which we do not do (see docs/commerce.md).

Shard keys are derived inside the scripts from the SKU's key base (declared keys are the meta, user,
reservation, expiry and idempotency keys); this is valid on Cluster because of the common tag.
Connection errors and timeouts raise ``SystemBusy`` (fail closed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from hexcity.commerce.domain.reservation import (
    ConfirmStatus,
    Hold,
    HoldState,
    ReserveResult,
    ReserveStatus,
    StockSnapshot,
    decode_allocation,
    split_stock,
    start_shard,
    validate_id,
    validate_preheat,
    validate_quantity,
    validate_ttl,
)
from hexcity.commerce.errors import SystemBusy

__all__ = ["RESERVE_LUA", "RedisReservationEngine", "decode_result"]

T = TypeVar("T")

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

PREHEAT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'initial', ARGV[1], 'shards', n, 'limit', ARGV[3], 'held', 0, 'confirmed', 0)
for i = 0, n - 1 do redis.call('SET', ARGV[4] .. 's:' .. i, ARGV[5 + i]) end
return 1
"""

# KEYS: meta, user, reservation, expiry, idempotency; ARGV: base, user, qty, rid, ttl_ms,
# retention_ms, start shard, use idempotency (0/1)
RESERVE_LUA = (
    """
if ARGV[8] == '1' then
  local prev = redis.call('GET', KEYS[5])
  if prev then return {'replay', prev} end
end
local meta = redis.call('HMGET', KEYS[1], 'shards', 'limit')
if not meta[1] then return {'fresh', 'not_stocked||0'} end
local n = tonumber(meta[1])
local qty = tonumber(ARGV[3])
local skeys = {}
for i = 0, n - 1 do skeys[i + 1] = ARGV[1] .. 's:' .. i end
local stocks = redis.call('MGET', unpack(skeys))
local total = 0
for i = 1, n do stocks[i] = tonumber(stocks[i]) or 0 total = total + stocks[i] end
local status, rid = '', ''
if redis.call('EXISTS', KEYS[3]) == 1 then
  status = 'reserved' rid = ARGV[4]
elseif tonumber(redis.call('GET', KEYS[2]) or '0') + qty > tonumber(meta[2]) then
  status = 'limit_exceeded'
elseif total < qty then
  if total == 0 then status = 'sold_out' else status = 'insufficient' end
else
  local need, alloc, start = qty, {}, tonumber(ARGV[7])
  for step = 0, n - 1 do
    local i = (start + step) % n
    local take = math.min(stocks[i + 1], need)
    if take > 0 then
      redis.call('DECRBY', skeys[i + 1], take)
      alloc[#alloc + 1] = i .. ':' .. take
      need = need - take
    end
    if need == 0 then break end
  end
"""
    + _NOW
    + """
  local expires = now + tonumber(ARGV[5])
  redis.call('HSET', KEYS[3], 'user', ARGV[2], 'qty', qty, 'alloc', table.concat(alloc, ','),
             'state', 'held', 'created', now, 'expires', expires)
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[5]) + tonumber(ARGV[6]))
  redis.call('INCRBY', KEYS[2], qty)
  redis.call('HINCRBY', KEYS[1], 'held', qty)
  redis.call('ZADD', KEYS[4], expires, ARGV[4])
  total = total - qty
  status = 'reserved' rid = ARGV[4]
end
local out = status .. '|' .. rid .. '|' .. total
if ARGV[8] == '1' then redis.call('SET', KEYS[5], out, 'PX', tonumber(ARGV[5]) + tonumber(ARGV[6])) end
return {'fresh', out}
"""
)

_RELEASE_FN = """
local function release(meta, hkey, expkey, base, rid)
  local h = redis.call('HMGET', hkey, 'state', 'qty', 'alloc', 'user')
  if h[1] ~= 'held' then redis.call('ZREM', expkey, rid) return 0 end
  for part in string.gmatch(h[3], '[^,]+') do
    local s, u = string.match(part, '(%d+):(%d+)')
    redis.call('INCRBY', base .. 's:' .. s, tonumber(u))
  end
  redis.call('DECRBY', base .. 'u:' .. h[4], tonumber(h[2]))
  redis.call('HINCRBY', meta, 'held', -tonumber(h[2]))
  redis.call('HSET', hkey, 'state', 'released')
  redis.call('ZREM', expkey, rid)
  return 1
end
"""

# KEYS: meta, reservation, expiry; ARGV: rid, base
RELEASE_LUA = _RELEASE_FN + "return release(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[1])\n"

# KEYS: meta, expiry; ARGV: base, limit
EXPIRE_LUA = (
    _RELEASE_FN
    + _NOW
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, rid in ipairs(due) do
  if release(KEYS[1], ARGV[1] .. 'r:' .. rid, KEYS[2], ARGV[1], rid) == 1 then out[#out + 1] = rid end
end
return out
"""
)

# KEYS: meta, reservation, expiry; ARGV: rid
CONFIRM_LUA = (
    """
local h = redis.call('HMGET', KEYS[2], 'state', 'qty', 'expires')
if not h[1] then return 'unknown' end
if h[1] == 'confirmed' then return 'already_confirmed' end
if h[1] ~= 'held' then return 'expired' end
"""
    + _NOW
    + """
if tonumber(h[3]) <= now then return 'expired' end
redis.call('HSET', KEYS[2], 'state', 'confirmed')
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'held', -tonumber(h[2]))
redis.call('HINCRBY', KEYS[1], 'confirmed', tonumber(h[2]))
return 'confirmed'
"""
)

# KEYS: meta; ARGV: base
SNAPSHOT_LUA = """
local m = redis.call('HMGET', KEYS[1], 'initial', 'shards', 'limit', 'held', 'confirmed')
if not m[1] then return {} end
local out = {m[1], m[3], m[4], m[5]}
for i = 0, tonumber(m[2]) - 1 do out[#out + 1] = redis.call('GET', ARGV[1] .. 's:' .. i) or '0' end
return out
"""

_BUSY = (
    redis_errors.MaxConnectionsError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    OSError,
)


class RedisReservationEngine:
    """Holds in Redis. ``client`` must be a ``redis.asyncio.Redis`` with ``decode_responses=True``
    and a socket timeout (its timeouts bound every call)."""

    def __init__(
        self, client: aioredis.Redis, *, prefix: str = "hexcity:commerce:", retention_s: float = 86_400.0
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._retention_ms = int(retention_s * 1000)
        self._preheat = client.register_script(PREHEAT_LUA)
        self._reserve = client.register_script(RESERVE_LUA)
        self._release = client.register_script(RELEASE_LUA)
        self._expire = client.register_script(EXPIRE_LUA)
        self._confirm = client.register_script(CONFIRM_LUA)
        self._snapshot = client.register_script(SNAPSHOT_LUA)

    def base(self, sku_id: str) -> str:
        """The key base ``p{sku}:`` of a SKU (every key of the SKU starts with it)."""
        return f"{self._prefix}{{{sku_id}}}:"

    async def _call(self, step: Callable[[], Awaitable[T]]) -> T:
        try:
            return await step()
        except _BUSY as exc:
            raise SystemBusy(f"stock store unreachable: {type(exc).__name__}") from exc

    async def preheat(self, sku_id: str, stock: int, *, shards: int, per_user_limit: int) -> bool:
        validate_id("sku_id", sku_id)
        validate_preheat(stock, shards, per_user_limit)
        b = self.base(sku_id)
        args: list[Any] = [stock, shards, per_user_limit, b, *split_stock(stock, shards)]
        done = await self._call(lambda: self._preheat(keys=[b + "meta"], args=args))
        return int(done) == 1

    async def reserve(
        self,
        sku_id: str,
        user_id: str,
        quantity: int,
        *,
        reservation_id: str,
        idempotency_key: str | None = None,
        ttl_s: float = 900.0,
    ) -> ReserveResult:
        validate_id("sku_id", sku_id)
        validate_id("user_id", user_id)
        validate_id("reservation_id", reservation_id)
        validate_quantity(quantity)
        ttl_ms = validate_ttl(ttl_s)
        if idempotency_key is not None:
            validate_id("idempotency_key", idempotency_key)
        keys, args = self.reserve_call(sku_id, user_id, quantity, reservation_id, idempotency_key, ttl_ms)
        kind, encoded = await self._call(lambda: self._reserve(keys=keys, args=args))
        return decode_result(encoded, replayed=kind == "replay")

    def reserve_call(
        self,
        sku_id: str,
        user_id: str,
        quantity: int,
        reservation_id: str,
        idempotency_key: str | None,
        ttl_ms: int,
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of one reserve script call (validated inputs; also used to pipeline)."""
        b = self.base(sku_id)
        idem = b + f"i:{user_id}|{idempotency_key}" if idempotency_key is not None else b + "meta"
        keys = [b + "meta", b + f"u:{user_id}", b + f"r:{reservation_id}", b + "exp", idem]
        start = start_shard(user_id, 1 << 32)  # the full crc32; Lua reduces it modulo the shard count
        args: list[Any] = [
            b,
            user_id,
            quantity,
            reservation_id,
            ttl_ms,
            self._retention_ms,
            start,
            1 if idempotency_key is not None else 0,
        ]
        return keys, args

    @property
    def reserve_script(self) -> Any:
        """The registered reserve script (``script(keys=..., args=..., client=pipeline)``)."""
        return self._reserve

    async def confirm(self, sku_id: str, reservation_id: str) -> ConfirmStatus:
        b = self.base(sku_id)
        keys = [b + "meta", b + f"r:{reservation_id}", b + "exp"]
        status = await self._call(lambda: self._confirm(keys=keys, args=[reservation_id]))
        return ConfirmStatus(str(status))

    async def release(self, sku_id: str, reservation_id: str) -> bool:
        b = self.base(sku_id)
        keys = [b + "meta", b + f"r:{reservation_id}", b + "exp"]
        done = await self._call(lambda: self._release(keys=keys, args=[reservation_id, b]))
        return int(done) == 1

    async def expire_due(self, sku_id: str, *, limit: int = 1000) -> list[str]:
        b = self.base(sku_id)
        ids = await self._call(lambda: self._expire(keys=[b + "meta", b + "exp"], args=[b, max(1, limit)]))
        return [str(i) for i in ids]

    async def get(self, sku_id: str, reservation_id: str) -> Hold | None:
        b = self.base(sku_id)
        row: dict[str, str] = await self._call(lambda: self._redis.hgetall(b + f"r:{reservation_id}"))  # type: ignore[arg-type,return-value]
        return _hold(sku_id, reservation_id, row) if row else None

    async def held(self, sku_id: str, *, limit: int = 1000) -> list[Hold]:
        b = self.base(sku_id)
        found_ids: list[Any] = await self._call(lambda: self._redis.zrange(b + "exp", 0, max(1, limit) - 1))
        ids = [str(i) for i in found_ids]
        if not ids:
            return []

        async def rows() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for rid in ids:
                    pipe.hgetall(b + f"r:{rid}")
                return list(await pipe.execute())

        found = await self._call(rows)
        holds = [_hold(sku_id, rid, row) for rid, row in zip(ids, found, strict=True) if row]
        return [h for h in holds if h.state is HoldState.HELD]

    async def snapshot(self, sku_id: str) -> StockSnapshot | None:
        b = self.base(sku_id)
        row = await self._call(lambda: self._snapshot(keys=[b + "meta"], args=[b]))
        if not row:
            return None
        initial, limit, held, confirmed, *shards = (int(v) for v in row)
        return StockSnapshot(sku_id, initial, sum(shards), held, confirmed, tuple(shards), limit)

    async def drop(self, sku_id: str) -> None:
        pattern = self.base(sku_id) + "*"

        async def scan_and_unlink() -> None:
            cursor = 0
            while True:
                cursor, keys = await self._redis.scan(cursor, match=pattern, count=1000)
                if keys:
                    await self._redis.unlink(*keys)
                if int(cursor) == 0:
                    return

        await self._call(scan_and_unlink)


def decode_result(encoded: str, *, replayed: bool = False) -> ReserveResult:
    """Parse the reserve script's ``status|reservation_id|remaining``."""
    status, rid, remaining = str(encoded).split("|")
    return ReserveResult(ReserveStatus(status), rid or None, int(remaining), replayed=replayed)


def _hold(sku_id: str, reservation_id: str, row: dict[str, str]) -> Hold:
    return Hold(
        reservation_id=reservation_id,
        sku_id=sku_id,
        user_id=row["user"],
        quantity=int(row["qty"]),
        allocation=decode_allocation(row["alloc"]),
        state=HoldState(row["state"]),
        created_at_ms=int(row["created"]),
        expires_at_ms=int(row["expires"]),
    )
