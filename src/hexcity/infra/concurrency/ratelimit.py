"""``RateLimiter``: a token bucket shared process-wide per upstream.

Per-call limits (aiometer's ``max_per_second``) do not protect a shared upstream: two overlapping
calls each get the full rate (aiometer #34, pitfall 10). Create **one** ``RateLimiter`` per
upstream and pass it to every caller. Compare Go's ``golang.org/x/time/rate.Limiter``
(https://pkg.go.dev/golang.org/x/time/rate): ``Allow`` is :meth:`try_acquire`, ``Wait`` is
:meth:`acquire`.

The clock and the sleep are injectable, so tests run on a fake clock without real waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from hexcity.infra.concurrency.errors import TooManyWaitersError


class RateLimiter:
    """``rate_per_s`` tokens per second, at most ``burst`` banked; starts full."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int = 1,
        *,
        name: str = "upstream",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_waiters: int = 10_000,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.name = name
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = asyncio.Lock()  # FIFO among waiters
        self._waiters = 0
        self._max_waiters = max_waiters

    @property
    def tokens(self) -> float:
        """Tokens banked right now."""
        self._refill()
        return self._tokens

    def try_acquire(self, tokens: int = 1) -> bool:
        """Take ``tokens`` if banked and nobody is waiting ahead; never waits."""
        self._check(tokens)
        if self._lock.locked():
            return False
        return self._take(tokens)

    async def acquire(self, tokens: int = 1) -> float:
        """Wait (FIFO) until ``tokens`` are banked and take them; returns the seconds waited."""
        self._check(tokens)
        if self._waiters >= self._max_waiters:
            raise TooManyWaitersError(f"{self.name}: {self._max_waiters} callers already waiting")
        start = self._clock()
        self._waiters += 1
        try:
            async with self._lock:
                while not self._take(tokens):
                    await self._sleep((tokens - self._tokens) / self.rate_per_s)
        finally:
            self._waiters -= 1
        return self._clock() - start

    def _check(self, tokens: int) -> None:
        if tokens < 1 or tokens > self.burst:
            raise ValueError(f"tokens must be in 1..burst ({self.burst})")

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)

    def _take(self, tokens: int) -> bool:
        self._refill()
        if self._tokens + 1e-9 >= tokens:
            self._tokens = max(0.0, self._tokens - tokens)
            return True
        return False
