"""Bounded worker pool: a bounded queue feeding N workers that live inside one ``asyncio.TaskGroup``.

The Go shape (a buffered channel plus N goroutines, operations.md §2.6) translated to asyncio:

* worker count and queue depth are separate settings;
* :meth:`WorkerPool.submit` awaits a free slot, so a fast producer is slowed to the workers' pace
  (backpressure), in FIFO order among waiting producers;
* :meth:`WorkerPool.submit_or_drop` never waits: it returns False and counts a drop when full;
* a failing job is logged and counted and never kills its worker;
* :meth:`WorkerPool.drain` closes intake, lets queued and in-flight jobs finish within a deadline,
  then cancels whatever is left and reports how many jobs were cancelled.

Memory is bounded by ``queue_size`` jobs plus ``workers`` running handlers, whatever the arrival
rate. Acknowledge a job to its source (broker offset, HTTP 202 is fine) only after it is in the
queue, and commit broker offsets only from the handler once the work is done (pitfall 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from prometheus_client import CollectorRegistry

from hexcity.infra.concurrency.errors import PoolClosedError
from hexcity.infra.concurrency.metrics import pool_metric_families
from hexcity.infra.logging import get_logger

T = TypeVar("T")
log = get_logger(__name__)

DEFAULT_DRAIN_DEADLINE_S = 10.0


@dataclass(frozen=True, slots=True)
class DrainReport:
    """What :meth:`WorkerPool.drain` did."""

    completed: int  # jobs that finished (successfully or not) during the drain
    cancelled: int  # queued or in-flight jobs cancelled at the deadline
    timed_out: bool
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Lifetime counters of one pool (the Prometheus families carry the same numbers)."""

    submitted: int
    dropped: int
    succeeded: int
    failed: int
    cancelled: int
    depth: int
    in_flight: int
    max_depth: int


class WorkerPool(Generic[T]):
    """``workers`` tasks consuming a queue of at most ``queue_size`` jobs with ``handler``.

    Use as an async context manager (the workers run inside a ``TaskGroup`` owned by the entering
    task); leaving the block drains with ``drain_deadline_s`` unless :meth:`drain` already ran, or
    cancels everything at once if the block raised.
    """

    def __init__(
        self,
        name: str,
        workers: int,
        queue_size: int,
        handler: Callable[[T], Awaitable[Any]],
        *,
        registry: CollectorRegistry | None = None,
        drain_deadline_s: float = DEFAULT_DRAIN_DEADLINE_S,
    ) -> None:
        if workers < 1 or queue_size < 1:
            raise ValueError("workers and queue_size must be >= 1")
        self.name = name
        self.workers = workers
        self._capacity = queue_size
        self._handler = handler
        self._drain_deadline_s = drain_deadline_s
        self._queue: asyncio.Queue[T] = asyncio.Queue()  # capacity is enforced here, not by the Queue
        self._putters: deque[asyncio.Future[None]] = deque()
        self._reserved = 0  # slots handed to woken putters that have not enqueued yet
        self._in_flight = 0
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._aborted = False
        self._drain_report: DrainReport | None = None
        self._drain_lock = asyncio.Lock()
        self._submitted = self._dropped = self._succeeded = self._failed = self._cancelled = 0
        self._max_depth = 0
        fams = pool_metric_families(registry)
        self._m_submitted = fams.submitted.labels(pool=name)
        self._m_dropped = fams.dropped.labels(pool=name)
        self._m_failed = fams.failed.labels(pool=name)
        # gauges are read at scrape time (no per-job cost); a weak reference keeps a finished pool
        # collectable, and the newest pool of a given name owns the series
        ref = weakref.ref(self)
        fams.queue_depth.labels(pool=name).set_function(lambda: _read(ref, "depth"))
        fams.saturation.labels(pool=name).set_function(lambda: _read(ref, "saturation"))
        fams.in_flight.labels(pool=name).set_function(lambda: _read(ref, "in_flight"))
        self._m_duration = fams.duration_s.labels(pool=name)

    # -- lifecycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._tg is not None:
            raise RuntimeError(f"pool {self.name!r} already started")
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._tasks = [
            self._tg.create_task(self._worker(), name=f"{self.name}-worker-{i}") for i in range(self.workers)
        ]
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._tg is not None
        if et is None:
            await self.drain(self._drain_deadline_s)
            await self._tg.__aexit__(None, None, None)
            return None
        # the block raised: cancel the workers at once, wait for them, and let the block's own
        # exception propagate unwrapped (a worker bug would still surface as an ExceptionGroup)
        self._abort()
        self._cancelled += self._discard_queued()
        await self._tg.__aexit__(None, None, None)
        return None

    @property
    def closed(self) -> bool:
        """True once intake stopped (drain started)."""
        return self._closed

    # -- intake -----------------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Queue slots (not counting the jobs the workers are running)."""
        return self._capacity

    @property
    def depth(self) -> int:
        """Occupied queue slots."""
        return self._queue.qsize() + self._reserved

    @property
    def saturation(self) -> float:
        """``depth / capacity`` in 0..1; readiness and 429s key off this (operations.md §2.7)."""
        return min(1.0, self.depth / self._capacity)

    @property
    def in_flight(self) -> int:
        """Jobs whose handler is running."""
        return self._in_flight

    async def submit(self, job: T) -> None:
        """Enqueue ``job``, waiting (FIFO) for a free slot: the producer is held back.

        Raises :class:`PoolClosedError` if the pool is draining, also when the drain starts while
        this call waits. Cancelling the caller while it waits enqueues nothing.
        """
        self._check_open()
        if self.depth >= self._capacity or self._putters:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._putters.append(fut)
            try:
                await fut  # a slot was reserved for us, or PoolClosedError
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    self._reserved -= 1  # woken and cancelled at once: hand the slot on
                    self._wake_putters()
                else:
                    self._discard_putter(fut)
                raise
            except PoolClosedError:
                self._discard_putter(fut)
                raise
            self._reserved -= 1
            if self._closed:  # the drain started between our wake-up and now
                raise PoolClosedError(f"pool {self.name!r} is draining")
        self._enqueue(job)

    def submit_or_drop(self, job: T, *, max_saturation: float = 1.0) -> bool:
        """Enqueue ``job`` if the pool is below ``max_saturation``, else count a drop and return False.

        Never waits. ``max_saturation=0.8`` is the HTTP edge's 429 threshold (operations.md §2.7).
        """
        if self._tg is None:
            raise RuntimeError(f"pool {self.name!r} is not started (use 'async with')")
        if self._closed or self.saturation >= max_saturation or self.depth >= self._capacity or self._putters:
            self.record_drop()
            return False
        self._enqueue(job)
        return True

    def record_drop(self) -> None:
        """Count a job refused for load reasons before it reached :meth:`submit_or_drop`."""
        self._dropped += 1
        self._m_dropped.inc()

    def _check_open(self) -> None:
        if self._closed:
            raise PoolClosedError(f"pool {self.name!r} is draining")
        if self._tg is None:
            raise RuntimeError(f"pool {self.name!r} is not started (use 'async with')")

    def _discard_putter(self, fut: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._putters.remove(fut)

    def _enqueue(self, job: T) -> None:
        self._queue.put_nowait(job)
        self._submitted += 1
        self._m_submitted.inc()
        depth = self.depth
        self._max_depth = max(self._max_depth, depth)

    def _wake_putters(self) -> None:
        while self._putters and self.depth < self._capacity:
            fut = self._putters.popleft()
            if not fut.done():
                self._reserved += 1
                fut.set_result(None)

    # -- workers ----------------------------------------------------------------------------------

    async def _worker(self) -> None:
        task = asyncio.current_task()
        while True:
            # check for cancellation before taking a job: Queue.get() does not suspend when the
            # queue is non-empty, so a pending cancel would otherwise only land inside the handler
            if self._aborted or (task is not None and task.cancelling()):
                raise asyncio.CancelledError
            job = await self._queue.get()
            self._wake_putters()
            await self._run(job)

    async def _run(self, job: T) -> None:
        self._in_flight += 1
        start = time.perf_counter()
        try:
            await self._handler(job)
        except asyncio.CancelledError:
            self._cancelled += 1
            raise
        except Exception:
            self._failed += 1
            self._m_failed.inc()
            log.exception("pool_job_failed", pool=self.name)
        else:
            self._succeeded += 1
        finally:
            self._in_flight -= 1
            self._m_duration.observe(time.perf_counter() - start)
            self._queue.task_done()

    # -- shutdown ---------------------------------------------------------------------------------

    async def drain(self, deadline_s: float = DEFAULT_DRAIN_DEADLINE_S) -> DrainReport:
        """Close intake, finish queued and in-flight jobs within ``deadline_s``, cancel the rest.

        Producers waiting in :meth:`submit` get :class:`PoolClosedError`. Idempotent: a second call
        returns the first report. May be called from any task (e.g. a SIGTERM handler).
        """
        async with self._drain_lock:
            if self._drain_report is not None:
                return self._drain_report
            self._closed = True
            while self._putters:
                fut = self._putters.popleft()
                if not fut.done():
                    fut.set_exception(PoolClosedError(f"pool {self.name!r} is draining"))
            done_before = self._succeeded + self._failed
            start = time.perf_counter()
            timed_out = False
            try:
                async with asyncio.timeout(deadline_s):
                    await self._queue.join()
            except TimeoutError:
                timed_out = True
            cancelled_before = self._cancelled
            queued = self._discard_queued()
            self._abort()
            if self._tasks:
                await asyncio.wait(self._tasks)
            cancelled = queued + self._cancelled - cancelled_before
            self._cancelled += queued
            self._drain_report = DrainReport(
                completed=self._succeeded + self._failed - done_before,
                cancelled=cancelled,
                timed_out=timed_out,
                elapsed_s=time.perf_counter() - start,
            )
            log.info(
                "pool_drained",
                pool=self.name,
                completed=self._drain_report.completed,
                cancelled=cancelled,
                timed_out=timed_out,
            )
            return self._drain_report

    def _discard_queued(self) -> int:
        n = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
            n += 1
        return n

    def _abort(self) -> None:
        self._closed = True
        self._aborted = True
        for t in self._tasks:
            t.cancel()

    def stats(self) -> PoolStats:
        """A snapshot of the lifetime counters."""
        return PoolStats(
            submitted=self._submitted,
            dropped=self._dropped,
            succeeded=self._succeeded,
            failed=self._failed,
            cancelled=self._cancelled,
            depth=self.depth,
            in_flight=self._in_flight,
            max_depth=self._max_depth,
        )


def _read(ref: weakref.ReferenceType[WorkerPool[Any]], attr: str) -> float:
    pool = ref()
    return 0.0 if pool is None else float(getattr(pool, attr))
