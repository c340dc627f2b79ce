"""Redis ``ReservationEngine``: one Lua script per decision (commerce.md §2.5–2.7, §2.10).

Keys of SKU ``s`` under prefix ``p`` (every key carries the hash tag ``{s}``, so all keys of a SKU
live in one Redis Cluster slot and the scripts never cross slots):

* ``p{s}:h`` — ONE HASH per SKU holding ``initial left shards limit held confirmed ttls``
  (``left`` = the sum of the shards, kept by every script), the shard stocks ``s0 .. s<n-1>``,
  the per-user units ``u:<user>`` (held or bought), the reservation records
  ``r:<reservation>`` = ``user|qty|alloc|state|sec|usec|ttl_ms`` (created at Redis ``TIME``
  ``sec``.``usec``, expires ``ttl_ms`` later; ``alloc`` = ``shard:units,...``; ids cannot contain
  ``|`` or ``,``) and ``q:<ttl_ms>`` markers of the hold queues in use (``ttls`` lists them);
* ``p{s}:q:<ttl_ms>`` — LIST of reservation ids with that TTL in creation order, hence in expiry
  order: the expiry sweep pops from its head (finished holds are dropped lazily when they reach
  it). An append (RPUSH) costs a fraction of the ZADD into a large ZSET it replaces;
* ``p{s}:done`` — ZSET reservation → purge time (expiry + ``retention_s``) of released/confirmed
  holds: their records stay readable that long for the reconciler, then ``expire_due`` deletes
  them;
* ``p{s}:i:<user>|<key>`` — the first result of an idempotency key (PX = TTL + retention).

The reserve script (the hot path): a refusal (sold out, over the limit, already reserved) is ONE
``HMGET`` (counters, ``left``, the buyer's units, the record, the queue marker); a success adds
``HGET`` of the buyer's start shard (not with one shard), ``TIME``, ONE ``HSET`` (shard, buyer's
units, ``held``, ``left``, record) and ``RPUSH``. The script formats at most the start shard's
number in Lua (``..`` on a number is a ``sprintf``, up to ~1 µs): the record keeps ``TIME``'s
strings and the TTL argument, and the reply is ``{status, remaining}``. It refuses when ``left``
is short (so nobody is told "sold out" while a shard still has stock), then draws from
``crc32(user) % shards`` onwards, reading every shard only when the start shard is short (the
fallback). Writes go as absolute values read in the same script, which is atomic.

Redis Cluster: the engine takes a ``redis.asyncio.cluster.RedisCluster`` as well; a SKU's shards
stay in one slot (see docs/commerce.md for why), different SKUs spread over the nodes.

Connection errors, timeouts and cluster-down errors raise ``SystemBusy`` (fail closed).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster

from hexcity.commerce.domain.reservation import (
    MAX_SHARDS,
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
_PAGE = 500  # hold-queue entries read per round trip by ``held``

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
# shard field names as constants: building ``'s' .. i`` formats a number (sprintf), ~1 µs each
_SHARD_NAMES = "{" + ",".join(f"'s{i}'" for i in range(MAX_SHARDS)) + "}"

# KEYS: hash; ARGV: initial, shards, limit, stock of shard 0..n-1
PREHEAT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[2])
local f = {'initial', ARGV[1], 'left', ARGV[1], 'shards', n, 'limit', ARGV[3], 'held', 0, 'confirmed', 0,
           'ttls', ''}
for i = 0, n - 1 do f[#f + 1] = 's' .. i f[#f + 1] = ARGV[4 + i] end
redis.call('HSET', KEYS[1], unpack(f))
return 1
"""

# KEYS: hash, hold queue of this TTL[, idempotency]; ARGV: user, qty, rid, ttl_ms, keep_ms, crc32(user).
# Returns ``{status, remaining}`` (the reservation id is the call's), or, replayed from the
# idempotency key, the first call's ``status|reservation_id|remaining`` string.
# The success path formats no timestamp in Lua (``..`` on a number is a sprintf): the record keeps
# ``TIME``'s own strings and the TTL argument; numbers go to ``HSET`` as arguments.
RESERVE_LUA = (
    """
local h = KEYS[1]
if KEYS[3] then
  local prev = redis.call('GET', KEYS[3])
  if prev then return prev end
end
local rf = 'r:' .. ARGV[3]
local f = redis.call('HMGET', h, 'left', rf)
if f[1] == '0' and not f[2] then  -- sold out and not a replay: what most of a stampede gets
  if KEYS[3] then redis.call('SET', KEYS[3], 'sold_out||0', 'PX', ARGV[4] + ARGV[5]) end
  return {'sold_out', 0}
end
local uf, qf = 'u:' .. ARGV[1], 'q:' .. ARGV[4]
local m = redis.call('HMGET', h, 'shards', 'limit', 'held', 'left', uf, rf, qf)
local out
if not m[1] then
  out = {'not_stocked', 0}
else
  local qty, used, total = ARGV[2] + 0, m[5] or 0, m[4] + 0
  if m[6] then
    out = {'reserved', total}
  elseif used + qty > m[2] + 0 then
    out = {'limit_exceeded', total}
  elseif total < qty then
    out = {total == 0 and 'sold_out' or 'insufficient', total}
  else
    local n = m[1] + 0
    local start = ARGV[6] % n
    local name = 's' .. start
    local w
    local have = n == 1 and total or redis.call('HGET', h, name) + 0  -- one shard: it holds the total
    local t = redis.call('TIME')
    local tail = '|held|' .. t[1] .. '|' .. t[2] .. '|' .. ARGV[4]
    if have >= qty then  -- the usual case: the buyer's own shard covers it
      w = {name, have - qty, uf, used + qty, 'held', m[3] + qty, 'left', total - qty,
           rf, ARGV[1] .. '|' .. ARGV[2] .. '|' .. string.sub(name, 2) .. ':' .. ARGV[2] .. tail}
    else  -- fall back over the next shards (the total covers it, so the draw completes)
      local names = """
    + _SHARD_NAMES
    + """
      local st = redis.call('HMGET', h, unpack(names, 1, n))
      local need, alloc = qty, {}
      w = {}
      for step = 0, n - 1 do
        local i = (start + step) % n + 1
        local take = math.min((st[i] or 0) + 0, need)
        if take > 0 then
          w[#w + 1] = names[i]
          w[#w + 1] = st[i] - take
          alloc[#alloc + 1] = string.sub(names[i], 2) .. ':' .. take
          need = need - take
          if need == 0 then break end
        end
      end
      w[#w + 1] = uf
      w[#w + 1] = used + qty
      w[#w + 1] = 'held'
      w[#w + 1] = m[3] + qty
      w[#w + 1] = 'left'
      w[#w + 1] = total - qty
      w[#w + 1] = rf
      w[#w + 1] = ARGV[1] .. '|' .. ARGV[2] .. '|' .. table.concat(alloc, ',') .. tail
    end
    if not m[7] then  -- the first hold with this TTL: register its queue for the expiry sweep
      w[#w + 1] = qf
      w[#w + 1] = 1
      w[#w + 1] = 'ttls'
      w[#w + 1] = (redis.call('HGET', h, 'ttls') or '') .. ARGV[4] .. ','
    end
    redis.call('HSET', h, unpack(w))
    redis.call('RPUSH', KEYS[2], ARGV[3])
    out = {'reserved', total - qty}
  end
end
if KEYS[3] then
  local rid = out[1] == 'reserved' and ARGV[3] or ''
  redis.call('SET', KEYS[3], out[1] .. '|' .. rid .. '|' .. out[2], 'PX', ARGV[4] + ARGV[5])
end
return out
"""
)

# a record is ``user|qty|alloc|state|sec|usec|ttl_ms`` (created at ``sec``.``usec`` of Redis ``TIME``,
# expires ``ttl_ms`` later); ``finish`` rewrites its state and files it in the purge ZSET
# (purged ``retention`` after its expiry)
_RECORD_FN = """
local function parse(v)
  local user, qty, alloc, state, sec, usec, ttl =
    string.match(v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  return user, qty, alloc, state, sec * 1000 + math.floor(usec / 1000) + ttl, sec, usec, ttl
end
local function finish(h, donekey, rid, v, state, keep_ms)
  local user, qty, alloc, _, expires, sec, usec, ttl = parse(v)
  local rec = user .. '|' .. qty .. '|' .. alloc .. '|' .. state
  redis.call('HSET', h, 'r:' .. rid, rec .. '|' .. sec .. '|' .. usec .. '|' .. ttl)
  redis.call('ZADD', donekey, expires + keep_ms, rid)
end
"""

_RELEASE_FN = (
    _RECORD_FN
    + """
local function release(h, donekey, rid, keep_ms)
  local v = redis.call('HGET', h, 'r:' .. rid)
  if not v then return 0 end
  local user, qty, alloc, state = parse(v)
  if state ~= 'held' then return 0 end
  for part in string.gmatch(alloc, '[^,]+') do
    local s, u = string.match(part, '(%d+):(%d+)')
    redis.call('HINCRBY', h, 's' .. s, tonumber(u))
  end
  redis.call('HINCRBY', h, 'left', tonumber(qty))
  redis.call('HINCRBY', h, 'u:' .. user, -tonumber(qty))
  redis.call('HINCRBY', h, 'held', -tonumber(qty))
  finish(h, donekey, rid, v, 'released', keep_ms)
  return 1
end
"""
)

# KEYS: hash, done; ARGV: rid, keep_ms
RELEASE_LUA = _RELEASE_FN + "return release(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]))\n"

# KEYS: hash, done, hold queue of each TTL; ARGV: limit, keep_ms. Each queue is in creation order,
# so in expiry order: pop finished holds and release due ones from its head, stop at the first live
# hold not yet due, after ``limit`` releases or after 10 × ``limit`` pops (bounded script time).
# Then purge outcomes past their retention.
EXPIRE_LUA = (
    _RELEASE_FN
    + _NOW
    + """
local limit, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
local out, seen = {}, 0
for k = 3, #KEYS do
  while #out < limit and seen < 10 * limit do  -- finished holds popped on the way count too
    local rid = redis.call('LINDEX', KEYS[k], 0)
    if not rid then break end
    local v = redis.call('HGET', KEYS[1], 'r:' .. rid)
    if v then
      local _, _, _, state, expires = parse(v)
      if state == 'held' then
        if expires > now then break end
        release(KEYS[1], KEYS[2], rid, keep)
        out[#out + 1] = rid
      end
    end
    redis.call('LPOP', KEYS[k])
    seen = seen + 1
  end
end
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
if #old > 0 then
  local f = {}
  for i, rid in ipairs(old) do f[i] = 'r:' .. rid end
  redis.call('HDEL', KEYS[1], unpack(f))
  redis.call('ZREM', KEYS[2], unpack(old))
end
return out
"""
)

# KEYS: hash, done; ARGV: rid, keep_ms
CONFIRM_LUA = (
    _RECORD_FN
    + """
local v = redis.call('HGET', KEYS[1], 'r:' .. ARGV[1])
if not v then return 'unknown' end
local _, qty, _, state, expires = parse(v)
if state == 'confirmed' then return 'already_confirmed' end
if state ~= 'held' then return 'expired' end
"""
    + _NOW
    + """
if expires <= now then return 'expired' end
redis.call('HINCRBY', KEYS[1], 'held', -tonumber(qty))
redis.call('HINCRBY', KEYS[1], 'confirmed', tonumber(qty))
finish(KEYS[1], KEYS[2], ARGV[1], v, 'confirmed', tonumber(ARGV[2]))
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
    redis_errors.ClusterDownError,  # also TRYAGAIN-free failovers: MasterDownError is one
    redis_errors.TryAgainError,
    redis_errors.SlotNotCoveredError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    OSError,
)


class RedisReservationEngine:
    """Holds in Redis. ``client`` is a ``redis.asyncio.Redis`` or, on Redis Cluster, a
    ``redis.asyncio.cluster.RedisCluster`` (every call names keys of one SKU, so of one slot), with
    ``decode_responses=True`` and a socket timeout (its timeouts bound every call)."""

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        *,
        prefix: str = "hexcity:commerce:",
        retention_s: float = 86_400.0,
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
        self._bases: dict[str, tuple[str, str, str]] = {}  # sku -> (base, hash, done)

    def base(self, sku_id: str) -> str:
        """The key base ``p{sku}:`` of a SKU (every key of the SKU starts with it)."""
        return self._keys(sku_id)[0]

    def _keys(self, sku_id: str) -> tuple[str, str, str]:
        found = self._bases.get(sku_id)
        if found is None:
            b = f"{self._prefix}{{{sku_id}}}:"
            found = (b, b + "h", b + "done")
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
        return decode_result(encoded, reservation_id)

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
        b, h, _ = self._keys(sku_id)
        keys = [h, f"{b}q:{ttl_ms}"]
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

    async def _queues(self, sku_id: str) -> list[str]:
        """The hold queues of the SKU (one per TTL in use), from the hash's ``ttls`` registry."""
        b, h, _ = self._keys(sku_id)
        ttls: str | None = await self._call(lambda: self._redis.hget(h, "ttls"))  # type: ignore[arg-type,return-value]
        return [f"{b}q:{ttl}" for ttl in (ttls or "").split(",") if ttl]

    async def expire_due(self, sku_id: str, *, limit: int = 1000) -> list[str]:
        """Release due holds (and purge outcomes older than the retention), at most ``limit`` each."""
        keys = [*self._keys(sku_id)[1:], *await self._queues(sku_id)]
        ids = await self._call(lambda: self._expire(keys=keys, args=[max(1, limit), self._retention_ms]))
        return [str(i) for i in ids]

    async def get(self, sku_id: str, reservation_id: str) -> Hold | None:
        h = self._keys(sku_id)[1]
        value: str | None = await self._call(lambda: self._redis.hget(h, "r:" + reservation_id))  # type: ignore[arg-type,return-value]
        return _hold(sku_id, reservation_id, value) if value else None

    async def held(self, sku_id: str, *, limit: int = 1000) -> list[Hold]:
        """Live holds, oldest expiry first: each TTL's queue is read from its head in pages,
        skipping finished holds (the queues drop those lazily, in ``expire_due``)."""
        limit = max(1, limit)
        h = self._keys(sku_id)[1]
        found: list[Hold] = []
        for queue in await self._queues(sku_id):
            live = 0
            for offset in range(0, 1 << 62, _PAGE):
                ids, values = await self._call(functools.partial(self._queue_page, h, queue, offset))
                if not ids:
                    break
                for rid, value in zip(ids, values, strict=True):
                    if value and (hold := _hold(sku_id, rid, value)).state is HoldState.HELD:
                        found.append(hold)
                        live += 1
                if live >= limit or len(ids) < _PAGE:
                    break
        found.sort(key=lambda hold: hold.expires_at_ms)
        return found[:limit]

    async def _queue_page(self, h: str, queue: str, offset: int) -> tuple[list[str], list[Any]]:
        found: list[Any] = await self._redis.lrange(queue, offset, offset + _PAGE - 1)
        ids = [str(i) for i in found]
        if not ids:
            return [], []
        values: list[Any] = await self._redis.hmget(h, ["r:" + rid for rid in ids])
        return ids, values

    async def snapshot(self, sku_id: str) -> StockSnapshot | None:
        h = self._keys(sku_id)[1]
        row = await self._call(lambda: self._snapshot(keys=[h]))
        if not row:
            return None
        initial, limit, held, confirmed, *shards = (int(v) for v in row)
        return StockSnapshot(sku_id, initial, sum(shards), held, confirmed, tuple(shards), limit)

    async def drop(self, sku_id: str) -> None:
        pattern = self.base(sku_id) + "*"

        async def scan_and_unlink() -> None:  # scan_iter also walks every node of a cluster
            keys = [key async for key in self._redis.scan_iter(match=pattern, count=1000)]
            for i in range(0, len(keys), 1000):
                await self._redis.unlink(*keys[i : i + 1000])  # one slot: the SKU's hash tag

        await self._call(scan_and_unlink)


def decode_result(encoded: Any, reservation_id: str | None = None) -> ReserveResult:
    """Parse the reserve script's reply: ``[status, remaining]`` (a hold is ``reservation_id``), or
    a replayed ``status|reservation_id|remaining`` string from the idempotency key."""
    if isinstance(encoded, (str, bytes)):
        text = encoded.decode() if isinstance(encoded, bytes) else encoded
        found, rid, remaining = text.split("|")
        return ReserveResult(ReserveStatus(found), rid or None, int(remaining), replayed=True)
    code, left = encoded
    status = ReserveStatus(code.decode() if isinstance(code, bytes) else code)
    return ReserveResult(status, reservation_id if status is ReserveStatus.RESERVED else None, int(left))


def _hold(sku_id: str, reservation_id: str, value: str) -> Hold:
    user, qty, alloc, state, sec, usec, ttl = value.split("|")
    created = int(sec) * 1000 + int(usec) // 1000
    return Hold(
        reservation_id=reservation_id,
        sku_id=sku_id,
        user_id=user,
        quantity=int(qty),
        allocation=decode_allocation(alloc),
        state=HoldState(state),
        created_at_ms=created,
        expires_at_ms=created + int(ttl),
    )
