"""``ConcurrencyLimiter``: a weighted, FIFO, resizable semaphore.

Modelled on Go's ``golang.org/x/sync/semaphore.Weighted`` (https://pkg.go.dev/golang.org/x/sync/semaphore)
and anyio's ``CapacityLimiter`` (borrower tracking, adjustable ``total_tokens``), operations.md §2.5:

* :meth:`acquire` of weight ``w`` waits until ``w`` tokens are free and honours cancellation:
  a cancelled waiter takes nothing, and a waiter cancelled just after being granted gives back;
* waiters are served strictly first-in first-out, like ``semaphore.Weighted``: a heavy job at the
  head is not starved by a stream of light ones;
* :attr:`capacity` can be changed at runtime; growing it admits waiters at once, shrinking it
  lets current holders finish;
* :meth:`run` shields an admitted job, so it completes even if its caller goes away;
* :meth:`wait_all` acquires the full capacity (Go's ``Acquire(ctx, size)``) and gives it back.

The wait queue is bounded (``max_waiters``): beyond it :class:`TooManyWaitersError` is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from hexcity.infra.concurrency.errors import TooManyWaitersError

R = TypeVar("R")


class ConcurrencyLimiter:
    """Weighted semaphore with ``capacity`` tokens."""

    def __init__(self, capacity: int, *, name: str = "limiter", max_waiters: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.name = name
        self._capacity = capacity
        self._borrowed = 0
        self._max_waiters = max_waiters
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._shielded: set[asyncio.Task[Any]] = set()

    @property
    def capacity(self) -> int:
        """Total tokens."""
        return self._capacity

    @capacity.setter
    def capacity(self, value: int) -> None:
        if value < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = value
        self._notify()

    @property
    def borrowed(self) -> int:
        """Tokens held right now (may exceed capacity briefly after a shrink)."""
        return self._borrowed

    @property
    def available(self) -> int:
        """Tokens free right now."""
        return max(0, self._capacity - self._borrowed)

    @property
    def waiting(self) -> int:
        """Callers waiting in :meth:`acquire`."""
        return sum(1 for _, f in self._waiters if not f.done())

    def try_acquire(self, weight: int = 1) -> bool:
        """Take ``weight`` tokens if free and nobody is queued ahead; never waits."""
        self._check_weight(weight)
        if not self._waiters and self._borrowed + weight <= self._capacity:
            self._borrowed += weight
            return True
        return False

    async def acquire(self, weight: int = 1) -> None:
        """Wait (FIFO) for ``weight`` tokens. Cancellation while waiting takes nothing."""
        if self.try_acquire(weight):
            return
        if len(self._waiters) >= self._max_waiters:
            raise TooManyWaitersError(f"{self.name}: {self._max_waiters} waiters already queued")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (weight, fut)
        self._waiters.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(weight)  # granted and cancelled in the same tick: give it back
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
                self._notify()  # we may have been the head blocking smaller waiters
            raise

    def release(self, weight: int = 1) -> None:
        """Give back ``weight`` tokens."""
        if weight > self._borrowed:
            raise RuntimeError(f"{self.name}: released more than held")
        self._borrowed -= weight
        self._notify()

    @contextlib.asynccontextmanager
    async def hold(self, weight: int = 1) -> AsyncIterator[None]:
        """``async with limiter.hold(5):`` acquire, run the block, release."""
        await self.acquire(weight)
        try:
            yield
        finally:
            self.release(weight)

    async def run(self, fn: Callable[[], Awaitable[R]], weight: int = 1) -> R:
        """Acquire ``weight``, then run ``fn()`` shielded: once admitted it runs to completion.

        If the caller is cancelled after admission, the job keeps running (tracked, so
        :meth:`wait_all` waits for it) and its tokens are released when it ends.
        """
        await self.acquire(weight)

        async def job() -> R:
            try:
                return await fn()
            finally:
                self.release(weight)

        task: asyncio.Task[R] = asyncio.get_running_loop().create_task(job())
        self._shielded.add(task)
        task.add_done_callback(self._shielded.discard)
        return await asyncio.shield(task)

    async def wait_all(self) -> None:
        """Wait until every holder has released: acquire the full capacity, then give it back."""
        weight = self._capacity
        await self.acquire(weight)
        self.release(weight)

    def _check_weight(self, weight: int) -> None:
        if weight < 1:
            raise ValueError("weight must be >= 1")
        if weight > self._capacity:
            # Go's Weighted blocks until the context ends here; a weight above the capacity at
            # call time is almost always a bug, so say so at once.
            raise ValueError(f"{self.name}: weight {weight} exceeds capacity {self._capacity}")

    def _notify(self) -> None:
        while self._waiters:
            weight, fut = self._waiters[0]
            if fut.done():
                self._waiters.popleft()
                continue
            if self._borrowed + weight > self._capacity:
                break  # strict FIFO: the head blocks smaller waiters behind it
            self._waiters.popleft()
            self._borrowed += weight
            fut.set_result(None)
