"""The Protocols the routing service needs; adapters in ``hexcity.routing.adapters`` implement them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hexcity.kernel import Unavailable
from hexcity.routing.domain.cache_keys import CachedCell


class CellStoreUnavailable(Unavailable):
    """A cell store (e.g. Redis) could not be reached in time; callers treat it as a cache miss."""

    code = "CacheUnavailable"


class CellStore(Protocol):
    """A bounded key-value store of cached table cells, always used in batches.

    Each call is one round trip at most (one ``MGET`` / one pipeline for Redis), never one per key.
    Entries expire after their time-to-live; an expired entry reads as ``None``.
    """

    def get_many(self, keys: Sequence[str]) -> list[CachedCell | None]:
        """The cells stored under ``keys``, in order; ``None`` for a missing or expired key.

        Raises:
            CellStoreUnavailable: the store could not answer.
        """
        ...

    def put_many(self, items: list[tuple[str, CachedCell]], ttl_s: float | None = None) -> None:
        """Store every ``(key, cell)``; each expires after ``ttl_s`` seconds, or ``cell.ttl_s`` if None.

        Raises:
            CellStoreUnavailable: the store could not be written.
        """
        ...
