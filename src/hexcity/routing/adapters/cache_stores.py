"""Cell stores for the table semantic cache: a bounded in-process LRU and Redis.

Both implement :class:`hexcity.routing.ports.CellStore` and work in batches: a table request does one
``get_many`` and one ``put_many``. Redis answers each batch in one round trip (one ``MGET``, or one
pipeline of ``MGET`` chunks for very large batches) and writes with one pipeline of
``SET key value PX ttl`` (routing.md §10, pitfall 3).
"""

from __future__ import annotations

import math
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import cast

import redis

from hexcity.routing.domain.cache_keys import CachedCell
from hexcity.routing.ports import CellStore, CellStoreUnavailable

__all__ = ["CachedCell", "CellStore", "MemoryCellStore", "RedisCellStore", "decode_cell", "encode_cell"]

# Value layout: 1 version byte + 5 little-endian float64 (duration_s, distance_m, compute_s,
# cached_at_s, ttl_s); NaN duration/distance encodes a cached "no route". 41 bytes per cell.
_FORMAT_VERSION = 1
_STRUCT = struct.Struct("<Bddddd")
MGET_CHUNK_KEYS = 10_000


def encode_cell(cell: CachedCell) -> bytes:
    """The 41-byte binary encoding of a cell, as stored in Redis."""
    duration = math.nan if cell.duration_s is None else cell.duration_s
    distance = math.nan if cell.distance_m is None else cell.distance_m
    return _STRUCT.pack(_FORMAT_VERSION, duration, distance, cell.compute_s, cell.cached_at_s, cell.ttl_s)


def decode_cell(raw: bytes) -> CachedCell | None:
    """The cell encoded in ``raw``, or ``None`` if it is not a value of this format (read as a miss)."""
    if len(raw) != _STRUCT.size:
        return None
    version, duration, distance, compute_s, cached_at_s, ttl_s = _STRUCT.unpack(raw)
    if version != _FORMAT_VERSION:
        return None
    return CachedCell(
        duration_s=None if math.isnan(duration) else duration,
        distance_m=None if math.isnan(distance) else distance,
        compute_s=compute_s,
        cached_at_s=cached_at_s,
        ttl_s=ttl_s,
    )


class MemoryCellStore:
    """A bounded in-process LRU of cells (the L1 tier): never holds more than ``max_entries``.

    Reading a live entry makes it most recent; writing past the bound evicts the least recent;
    an entry read after its time-to-live is dropped and reads as ``None``. Thread-safe.
    Memory: roughly 250-300 bytes per entry (key string + cell + dict slot).

    Raises:
        ValueError: ``max_entries`` < 1.
    """

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (expires_at_s, cell)
        self._entries: OrderedDict[str, tuple[float, CachedCell]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get_many(self, keys: Sequence[str]) -> list[CachedCell | None]:
        """The live cells under ``keys`` in order, ``None`` where missing or expired."""
        now_s = self._clock()
        out: list[CachedCell | None] = []
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    out.append(None)
                elif entry[0] <= now_s:
                    del self._entries[key]
                    out.append(None)
                else:
                    self._entries.move_to_end(key)
                    out.append(entry[1])
        return out

    def put_many(self, items: list[tuple[str, CachedCell]], ttl_s: float | None = None) -> None:
        """Store each cell for ``ttl_s`` seconds (``cell.ttl_s`` if None), evicting least-recent entries."""
        now_s = self._clock()
        with self._lock:
            for key, cell in items:
                life_s = cell.ttl_s if ttl_s is None else ttl_s
                if life_s <= 0:
                    self._entries.pop(key, None)
                    continue
                self._entries[key] = (now_s + life_s, cell)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)


class RedisCellStore:
    """Cells in Redis (the L2 tier), one round trip per batch.

    The client is built and configured (socket timeouts, pool size) by the caller and must return
    bytes (``decode_responses=False``). Keys are ``key_prefix + key``. Redis bounds this store by its
    ``maxmemory`` policy; every entry also carries a TTL (``PX``), so nothing lives forever.
    Values are the 41-byte encoding of :func:`encode_cell`; foreign or corrupt values read as misses.

    Raises:
        ValueError: the client decodes responses to ``str``.
    """

    def __init__(self, client: redis.Redis, key_prefix: str = "") -> None:
        if client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("RedisCellStore needs a client with decode_responses=False")
        self._client = client
        self._key_prefix = key_prefix

    def get_many(self, keys: Sequence[str]) -> list[CachedCell | None]:
        """The cells under ``keys`` in order; one ``MGET`` (or one pipeline of ``MGET`` chunks).

        Raises:
            CellStoreUnavailable: Redis failed or timed out.
        """
        if not keys:
            return []
        full_keys = [self._key_prefix + key for key in keys]
        try:
            if len(full_keys) <= MGET_CHUNK_KEYS:
                raw_values = cast("list[bytes | None]", self._client.mget(full_keys))
            else:
                pipe = self._client.pipeline(transaction=False)
                for start in range(0, len(full_keys), MGET_CHUNK_KEYS):
                    pipe.mget(full_keys[start : start + MGET_CHUNK_KEYS])
                raw_values = [value for chunk in pipe.execute() for value in chunk]
        except redis.RedisError as exc:
            raise CellStoreUnavailable(f"Redis MGET of {len(keys)} keys failed: {exc}") from exc
        return [None if raw is None else decode_cell(raw) for raw in raw_values]

    def put_many(self, items: list[tuple[str, CachedCell]], ttl_s: float | None = None) -> None:
        """Write every cell with ``SET key value PX ttl`` in one non-transactional pipeline.

        TTLs are rounded up to whole milliseconds; an item whose TTL is <= 0 is skipped.

        Raises:
            CellStoreUnavailable: Redis failed or timed out.
        """
        if not items:
            return
        pipe = self._client.pipeline(transaction=False)
        queued = 0
        for key, cell in items:
            life_s = cell.ttl_s if ttl_s is None else ttl_s
            if life_s <= 0:
                continue
            pipe.set(self._key_prefix + key, encode_cell(cell), px=max(1, math.ceil(life_s * 1000.0)))
            queued += 1
        if queued == 0:
            return
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise CellStoreUnavailable(f"Redis pipeline SET of {queued} keys failed: {exc}") from exc
