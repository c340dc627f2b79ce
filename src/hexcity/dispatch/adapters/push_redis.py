"""Redis connection directory for several API processes (``client_id → node``).

One HASH per client, ``{prefix}push:conn:{client_id}`` with fields ``node`` and ``since_s``, and a
TTL (default 30 s) that the owning node refreshes (``PushHub.start`` does, every 10 s). A node that
dies without unregistering stops refreshing, so its entries vanish after one TTL. Unregister and
refresh are compare-and-act Lua scripts: they touch the entry only while it is missing or still
names the calling node, so a reconnect that landed on another node is never undone by the old one
(and an entry lost to an unregister/register race is re-created by the next refresh).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis.asyncio as aioredis

__all__ = ["RedisConnectionDirectory"]

# KEYS[1] entry; ARGV node -> 1 if deleted
_UNREGISTER = """
if redis.call('HGET', KEYS[1], 'node') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS entries; ARGV[1] node, ARGV[2] ttl -> number refreshed (a lost entry is re-created,
# one that names another node is left alone)
_REFRESH = """
local n = 0
for _, key in ipairs(KEYS) do
  local node = redis.call('HGET', key, 'node')
  if not node or node == ARGV[1] then
    redis.call('HSET', key, 'node', ARGV[1])
    redis.call('EXPIRE', key, tonumber(ARGV[2]))
    n = n + 1
  end
end
return n
"""

MAX_REFRESH_BATCH = 1000


class RedisConnectionDirectory:
    """A :class:`~hexcity.dispatch.push.ConnectionDirectory` on Redis (HSET + EXPIRE)."""

    def __init__(self, client: aioredis.Redis, prefix: str, ttl_s: int = 30) -> None:
        if not 1 <= ttl_s <= 86_400:
            raise ValueError("ttl_s must be within [1, 86400]")
        self._client, self._prefix, self.ttl_s = client, prefix, ttl_s
        self._unregister = client.register_script(_UNREGISTER)
        self._refresh = client.register_script(_REFRESH)

    def key(self, client_id: str) -> str:
        return f"{self._prefix}push:conn:{client_id}"

    async def register(self, client_id: str, node_id: str) -> None:
        key = self.key(client_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"node": node_id, "since_s": repr(time.time())})
            pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def unregister(self, client_id: str, node_id: str) -> None:
        await self._unregister(keys=[self.key(client_id)], args=[node_id])

    async def lookup(self, client_id: str) -> str | None:
        node = await self._client.hget(self.key(client_id), "node")
        if node is None:
            return None
        return node.decode() if isinstance(node, bytes) else str(node)

    async def refresh(self, client_ids: Sequence[str], node_id: str) -> None:
        """Re-assert ``node_id`` with a fresh TTL for entries missing or naming it (batches of 1,000)."""
        for start in range(0, len(client_ids), MAX_REFRESH_BATCH):
            keys = [self.key(c) for c in client_ids[start : start + MAX_REFRESH_BATCH]]
            await self._refresh(keys=keys, args=[node_id, self.ttl_s])
