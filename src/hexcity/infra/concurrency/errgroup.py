"""``ErrGroup``: Go's ``golang.org/x/sync/errgroup`` semantics on top of ``asyncio.TaskGroup``.

See https://pkg.go.dev/golang.org/x/sync/errgroup. For a finite, all-or-nothing batch
(operations.md §2.4):

* the first non-cancellation error cancels the siblings (``TaskGroup`` does this);
* every task is awaited before the ``async with`` block exits: no task outlives the group;
* errors surface together in an ``ExceptionGroup`` holding the original exceptions;
* ``limit`` is Go's ``SetLimit``: a semaphore acquired in :meth:`ErrGroup.go` **before**
  ``create_task`` and released inside the task, so the producer blocks while ``limit`` tasks run.
  Acquiring and releasing in the producer would bound nothing (pitfall 2).

Not for streams, for rejecting work, or for log-and-continue handling: use ``WorkerPool`` there.
Do not combine with ``asyncio.eager_task_factory`` (CPython #128550: a group can then fail to
cancel pending tasks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

R = TypeVar("R")


class ErrGroup:
    """``async with ErrGroup(limit=10) as g: await g.go(fetch, url)`` for each url."""

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("limit must be >= 1 or None")
        self.limit = limit
        self._sem = asyncio.Semaphore(limit) if limit is not None else None
        self._tg = asyncio.TaskGroup()
        self._failed = False
        self._running = 0
        self.max_running = 0  # peak concurrency seen, for tests and soak checks

    async def __aenter__(self) -> Self:
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        await self._tg.__aexit__(et, exc, tb)
        return None

    @property
    def running(self) -> int:
        """Tasks started and not finished."""
        return self._running

    async def go(self, fn: Callable[..., Awaitable[R]], *args: Any) -> asyncio.Task[R]:
        """Start ``fn(*args)`` in the group, first waiting for a slot when ``limit`` is set.

        Takes a function, not a coroutine object, so nothing is created (or left un-awaited)
        while the caller waits for a slot. After a sibling failed, raises ``CancelledError``: the
        group is aborting and its ``async with`` exit raises the ``ExceptionGroup``.
        """
        if self._sem is not None:
            await self._sem.acquire()
        if self._failed:
            self._release()
            raise asyncio.CancelledError
        self._running += 1
        self.max_running = max(self.max_running, self._running)
        try:
            return self._tg.create_task(self._run(fn, args))
        except BaseException:
            self._running -= 1
            self._release()
            raise

    async def _run(self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...]) -> R:
        try:
            return await fn(*args)
        except asyncio.CancelledError:
            raise
        except BaseException:
            self._failed = True
            raise
        finally:
            self._running -= 1
            self._release()

    def _release(self) -> None:
        if self._sem is not None:
            self._sem.release()
