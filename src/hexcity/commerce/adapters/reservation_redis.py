"""Redis ``ReservationEngine``: one Lua script per decision (commerce.md §2.5–2.7, §2.10).

Keys of SKU ``s`` under prefix ``p`` (every key carries the hash tag ``{s}``, so all keys of a SKU
live in one Redis Cluster slot and the scripts never cross slots):

* ``p{s}:h`` — ONE HASH per SKU holding ``initial shards limit held confirmed``, the shard stocks
  ``s0 .. s<n-1>``, the per-user units ``u:<user>`` (held or bought) and the reservation records
  ``r:<reservation>`` = ``user|qty|alloc|state|created|expires`` (``alloc`` = ``shard:units,...``;
  ids cannot contain ``|`` or ``,``);
* ``p{s}:exp`` — ZSET reservation → expiry (ms, Redis ``TIME``) of live holds;
* ``p{s}:done`` — ZSET reservation → purge time (expiry + ``retention_s``) of released/confirmed
  holds: their records stay readable that long for the reconciler, then ``expire_due`` deletes
  them (the retention the old per-record PEXPIRE gave);
* ``p{s}:i:<user>|<key>`` — the encoded first result of an idempotency key (PX = TTL + retention).

The reserve script (the hot path) is four commands on success: one ``HMGET`` reads the shard count,
limit, ``held``, the buyer's units, the reservation record (the "already reserved" check) and shard
0 — a second ``HMGET`` reads shards 1..n-1 when sharded —, the decision is taken in Lua, then
``TIME``, ONE ``HSET`` writes the drawn shards, the buyer's units, ``held`` and the record, and
``ZADD`` files the expiry (the earlier version issued 11 commands). Refusals cost the one ``HMGET``.
Writes go as absolute values read in the same script, which is atomic. The script refuses when the
total is short (so nobody is told "sold out" while a shard still has stock), then draws from
``crc32(user) % shards`` onwards. Sharding inside one slot keeps a hot SKU's per-call work O(shards)
and lets the script fall back atomically; spreading one SKU over several Redis nodes would need
per-shard tags and a per-user limit that crosses slots, which we do not do (see docs/commerce.md).

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

# KEYS: hash; ARGV: initial, shards, limit, stock of shard 0..n-1
PREHEAT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[2])
local f = {'initial', ARGV[1], 'shards', n, 'limit', ARGV[3], 'held', 0, 'confirmed', 0}
for i = 0, n - 1 do f[#f + 1] = 's' .. i f[#f + 1] = ARGV[4 + i] end
redis.call('HSET', KEYS[1], unpack(f))
return 1
"""

# KEYS: hash, expiry[, idempotency]; ARGV: user, qty, rid, ttl_ms, keep_ms, start shard.
# Returns ``status|reservation_id|remaining``, prefixed with ``~`` when replayed from the idempotency key.
RESERVE_LUA = (
    """
local h = KEYS[1]
if KEYS[3] then
  local prev = redis.call('GET', KEYS[3])
  if prev then return '~' .. prev end
end
local uf, rf = 'u:' .. ARGV[1], 'r:' .. ARGV[3]
local m = redis.call('HMGET', h, 'shards', 'limit', 'held', uf, rf, 's0')
if not m[1] then return 'not_stocked||0' end
local n = tonumber(m[1])
local qty = tonumber(ARGV[2])
local st = {tonumber(m[6]) or 0}
if n > 1 then
  local f = {}
  for i = 1, n - 1 do f[i] = 's' .. i end
  local rest = redis.call('HMGET', h, unpack(f))
  for i = 1, n - 1 do st[i + 1] = tonumber(rest[i]) or 0 end
end
local total = 0
for i = 1, n do total = total + st[i] end
local used = tonumber(m[4]) or 0
local out
if m[5] then
  out = 'reserved|' .. ARGV[3] .. '|' .. total
elseif used + qty > tonumber(m[2]) then
  out = 'limit_exceeded||' .. total
elseif total < qty then
  if total == 0 then out = 'sold_out||0' else out = 'insufficient||' .. total end
else
"""
    + _NOW
    + """
  local expires = now + tonumber(ARGV[4])
  local start = tonumber(ARGV[6]) % n
  local tail = '|held|' .. now .. '|' .. expires
  if st[start + 1] >= qty then  -- the usual case: the buyer's own shard covers it
    redis.call('HSET', h, 's' .. start, st[start + 1] - qty, uf, used + qty, 'held', tonumber(m[3]) + qty,
               rf, ARGV[1] .. '|' .. qty .. '|' .. start .. ':' .. qty .. tail)
  else  -- fall back over the next shards
    local need, alloc, w = qty, {}, {}
    for step = 0, n - 1 do
      local i = (start + step) % n
      local take = math.min(st[i + 1], need)
      if take > 0 then
        w[#w + 1] = 's' .. i
        w[#w + 1] = st[i + 1] - take
        alloc[#alloc + 1] = i .. ':' .. take
        need = need - take
      end
      if need == 0 then break end
    end
    w[#w + 1] = uf
    w[#w + 1] = used + qty
    w[#w + 1] = 'held'
    w[#w + 1] = tonumber(m[3]) + qty
    w[#w + 1] = rf
    w[#w + 1] = ARGV[1] .. '|' .. qty .. '|' .. table.concat(alloc, ',') .. tail
    redis.call('HSET', h, unpack(w))
  end
  redis.call('ZADD', KEYS[2], expires, ARGV[3])
  out = 'reserved|' .. ARGV[3] .. '|' .. (total - qty)
end
if KEYS[3] then redis.call('SET', KEYS[3], out, 'PX', tonumber(ARGV[4]) + tonumber(ARGV[5])) end
return out
"""
)

# a record is ``user|qty|alloc|state|created|expires``; ``finish`` rewrites its state and moves it
# from the live-hold ZSET to the purge ZSET (purged ``retention`` after its expiry)
_RECORD_FN = """
local function parse(v)
  return string.match(v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
end
local function finish(h, expkey, donekey, rid, v, state, keep_ms)
  local user, qty, alloc, _, created, expires = parse(v)
  local rec = user .. '|' .. qty .. '|' .. alloc .. '|' .. state .. '|' .. created .. '|' .. expires
  redis.call('HSET', h, 'r:' .. rid, rec)
  redis.call('ZREM', expkey, rid)
  redis.call('ZADD', donekey, tonumber(expires) + keep_ms, rid)
end
"""

_RELEASE_FN = (
    _RECORD_FN
    + """
local function release(h, expkey, donekey, rid, keep_ms)
  local v = redis.call('HGET', h, 'r:' .. rid)
  if not v then redis.call('ZREM', expkey, rid) return 0 end
  local user, qty, alloc, state = parse(v)
  if state ~= 'held' then redis.call('ZREM', expkey, rid) return 0 end
  for part in string.gmatch(alloc, '[^,]+') do
    local s, u = string.match(part, '(%d+):(%d+)')
    redis.call('HINCRBY', h, 's' .. s, tonumber(u))
  end
  redis.call('HINCRBY', h, 'u:' .. user, -tonumber(qty))
  redis.call('HINCRBY', h, 'held', -tonumber(qty))
  finish(h, expkey, donekey, rid, v, 'released', keep_ms)
  return 1
end
"""
)

# KEYS: hash, expiry, done; ARGV: rid, keep_ms
RELEASE_LUA = _RELEASE_FN + "return release(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]))\n"

# KEYS: hash, expiry, done; ARGV: limit, keep_ms. Releases due holds, then purges old outcomes.
EXPIRE_LUA = (
    _RELEASE_FN
    + _NOW
    + """
local limit, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
local out = {}
for _, rid in ipairs(due) do
  if release(KEYS[1], KEYS[2], KEYS[3], rid, keep) == 1 then out[#out + 1] = rid end
end
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, limit)
if #old > 0 then
  local f = {}
  for i, rid in ipairs(old) do f[i] = 'r:' .. rid end
  redis.call('HDEL', KEYS[1], unpack(f))
  redis.call('ZREM', KEYS[3], unpack(old))
end
return out
"""
)

# KEYS: hash, expiry, done; ARGV: rid, keep_ms
CONFIRM_LUA = (
    _RECORD_FN
    + """
local v = redis.call('HGET', KEYS[1], 'r:' .. ARGV[1])
if not v then return 'unknown' end
local _, qty, _, state, _, expires = parse(v)
if state == 'confirmed' then return 'already_confirmed' end
if state ~= 'held' then return 'expired' end
"""
    + _NOW
    + """
if tonumber(expires) <= now then return 'expired' end
redis.call('HINCRBY', KEYS[1], 'held', -tonumber(qty))
redis.call('HINCRBY', KEYS[1], 'confirmed', tonumber(qty))
finish(KEYS[1], KEYS[2], KEYS[3], ARGV[1], v, 'confirmed', tonumber(ARGV[2]))
return 'confirmed'
"""
)

# KEYS: hash
SNAPSHOT_LUA = """
local m = redis.call('HMGET', KEYS[1], 'initial', 'shards', 'limit', 'held', 'confirmed')
if not m[1] then return {} end
local out = {m[1], m[3], m[4], m[5]}
local f = {}
for i = 0, tonumber(m[2]) - 1 do f[i + 1] = 's' .. i end
local st = redis.call('HMGET', KEYS[1], unpack(f))
for i = 1, #f do out[#out + 1] = st[i] or '0' end
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
        self._bases: dict[str, tuple[str, str, str, str]] = {}  # sku -> (base, hash, expiry, done)

    def base(self, sku_id: str) -> str:
        """The key base ``p{sku}:`` of a SKU (every key of the SKU starts with it)."""
        return self._keys(sku_id)[0]

    def _keys(self, sku_id: str) -> tuple[str, str, str, str]:
        found = self._bases.get(sku_id)
        if found is None:
            b = f"{self._prefix}{{{sku_id}}}:"
            found = (b, b + "h", b + "exp", b + "done")
            if len(self._bases) >= 10_000:  # bounded: SKUs on sale at once are far fewer
                self._bases.clear()
            self._bases[sku_id] = found
        return found

    async def _call(self, step: Callable[[], Awaitable[T]]) -> T:
        try:
            return await step()
        except _BUSY as exc:
            raise SystemBusy(f"stock store unreachable: {type(exc).__name__}") from exc

    async def preheat(self, sku_id: str, stock: int, *, shards: int, per_user_limit: int) -> bool:
        validate_id("sku_id", sku_id)
        validate_preheat(stock, shards, per_user_limit)
        h = self._keys(sku_id)[1]
        args: list[Any] = [stock, shards, per_user_limit, *split_stock(stock, shards)]
        done = await self._call(lambda: self._preheat(keys=[h], args=args))
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
        encoded = await self._call(lambda: self._reserve(keys=keys, args=args))
        return decode_result(encoded)

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
        b, h, exp, _ = self._keys(sku_id)
        keys = [h, exp]
        if idempotency_key is not None:
            keys.append(f"{b}i:{user_id}|{idempotency_key}")
        start = start_shard(user_id, 1 << 32)  # the full crc32; Lua reduces it modulo the shard count
        return keys, [user_id, quantity, reservation_id, ttl_ms, self._retention_ms, start]

    @property
    def reserve_script(self) -> Any:
        """The registered reserve script (``script(keys=..., args=..., client=pipeline)``)."""
        return self._reserve

    async def confirm(self, sku_id: str, reservation_id: str) -> ConfirmStatus:
        keys = list(self._keys(sku_id)[1:])
        args: list[Any] = [reservation_id, self._retention_ms]
        status = await self._call(lambda: self._confirm(keys=keys, args=args))
        return ConfirmStatus(str(status))

    async def release(self, sku_id: str, reservation_id: str) -> bool:
        keys = list(self._keys(sku_id)[1:])
        done = await self._call(lambda: self._release(keys=keys, args=[reservation_id, self._retention_ms]))
        return int(done) == 1

    async def expire_due(self, sku_id: str, *, limit: int = 1000) -> list[str]:
        """Release due holds (and purge outcomes older than the retention), at most ``limit`` each."""
        keys = list(self._keys(sku_id)[1:])
        ids = await self._call(lambda: self._expire(keys=keys, args=[max(1, limit), self._retention_ms]))
        return [str(i) for i in ids]

    async def get(self, sku_id: str, reservation_id: str) -> Hold | None:
        h = self._keys(sku_id)[1]
        value: str | None = await self._call(lambda: self._redis.hget(h, "r:" + reservation_id))  # type: ignore[arg-type,return-value]
        return _hold(sku_id, reservation_id, value) if value else None

    async def held(self, sku_id: str, *, limit: int = 1000) -> list[Hold]:
        _, h, exp, _ = self._keys(sku_id)
        found_ids: list[Any] = await self._call(lambda: self._redis.zrange(exp, 0, max(1, limit) - 1))
        ids = [str(i) for i in found_ids]
        if not ids:
            return []
        found: list[Any] = await self._call(lambda: self._redis.hmget(h, ["r:" + rid for rid in ids]))
        holds = [_hold(sku_id, rid, value) for rid, value in zip(ids, found, strict=True) if value]
        return [hold for hold in holds if hold.state is HoldState.HELD]

    async def snapshot(self, sku_id: str) -> StockSnapshot | None:
        h = self._keys(sku_id)[1]
        row = await self._call(lambda: self._snapshot(keys=[h]))
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


def decode_result(encoded: str) -> ReserveResult:
    """Parse the reserve script's ``status|reservation_id|remaining`` (``~`` first: a replay)."""
    text = str(encoded)
    replayed = text.startswith("~")
    status, rid, remaining = (text[1:] if replayed else text).split("|")
    return ReserveResult(ReserveStatus(status), rid or None, int(remaining), replayed=replayed)


def _hold(sku_id: str, reservation_id: str, value: str) -> Hold:
    user, qty, alloc, state, created, expires = value.split("|")
    return Hold(
        reservation_id=reservation_id,
        sku_id=sku_id,
        user_id=user,
        quantity=int(qty),
        allocation=decode_allocation(alloc),
        state=HoldState(state),
        created_at_ms=int(created),
        expires_at_ms=int(expires),
    )
