"""WorkerPool, ErrGroup, ConcurrencyLimiter, RateLimiter and GracefulShutdown: exact behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry

from hexcity.infra.concurrency import (
    ConcurrencyLimiter,
    ErrGroup,
    GracefulShutdown,
    PoolClosedError,
    RateLimiter,
    TooManyWaitersError,
    WorkerPool,
    pool_metric_families,
)

pytestmark = pytest.mark.timeout(30)
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 20))


async def settle(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def gated(gate: asyncio.Event, done: list[int]) -> Callable[[int], Awaitable[None]]:
    async def handler(job: int) -> None:
        await gate.wait()
        done.append(job)

    return handler


def sample(reg: CollectorRegistry, name: str, pool: str) -> float:
    value = reg.get_sample_value(name, {"pool": pool})
    return 0.0 if value is None else value


# -- WorkerPool ---------------------------------------------------------------------------------


def test_submit_blocks_when_queue_full_and_resumes_fifo() -> None:
    async def main() -> None:
        gate, done = asyncio.Event(), []
        reg = CollectorRegistry()
        async with WorkerPool("p", workers=1, queue_size=2, handler=gated(gate, done), registry=reg) as pool:
            await pool.submit(0)
            await settle()  # the worker took job 0 and blocks on the gate
            assert pool.in_flight == 1
            await pool.submit(1)
            await pool.submit(2)
            assert pool.depth == 2
            assert pool.saturation == 1.0
            third = asyncio.create_task(pool.submit(3))
            fourth = asyncio.create_task(pool.submit(4))
            await settle()
            assert not third.done() and not fourth.done()  # backpressure: the producers wait
            assert pool.depth == 2
            gate.set()
            await asyncio.gather(third, fourth)
        assert done == [0, 1, 2, 3, 4]  # FIFO, nothing lost
        assert sample(reg, "jobs_submitted_total", "p") == 5
        assert sample(reg, "queue_depth", "p") == 0
        assert reg.get_sample_value("job_duration_seconds_count", {"pool": "p"}) == 5

    run(main())


def test_submit_or_drop_returns_false_and_counts() -> None:
    async def main() -> None:
        gate, done = asyncio.Event(), []
        reg = CollectorRegistry()
        async with WorkerPool("d", workers=1, queue_size=3, handler=gated(gate, done), registry=reg) as pool:
            assert pool.submit_or_drop(0)
            await settle()
            assert [pool.submit_or_drop(i) for i in (1, 2, 3, 4, 5)] == [True, True, True, False, False]
            assert pool.stats().dropped == 2
            assert sample(reg, "jobs_dropped_total", "d") == 2
            # the edge's 80 % threshold: 3/3 is above it
            assert not pool.submit_or_drop(6, max_saturation=0.8)
            assert sample(reg, "jobs_dropped_total", "d") == 3
            gate.set()
        assert sorted(done) == [0, 1, 2, 3]

    run(main())


def test_failing_job_is_counted_and_worker_survives() -> None:
    async def main() -> None:
        done: list[int] = []

        async def handler(job: int) -> None:
            if job % 2:
                raise ValueError(job)
            done.append(job)

        reg = CollectorRegistry()
        async with WorkerPool("f", workers=1, queue_size=10, handler=handler, registry=reg) as pool:
            for i in range(6):
                await pool.submit(i)
        assert done == [0, 2, 4]
        stats = pool.stats()
        assert (stats.succeeded, stats.failed) == (3, 3)
        assert sample(reg, "jobs_failed_total", "f") == 3

    run(main())


def test_drain_finishes_in_flight_within_deadline() -> None:
    async def main() -> None:
        done: list[int] = []

        async def handler(job: int) -> None:
            await asyncio.sleep(0.01)
            done.append(job)

        async with WorkerPool("ok", workers=2, queue_size=10, handler=handler) as pool:
            for i in range(6):
                await pool.submit(i)
            report = await pool.drain(5.0)
            assert (report.completed, report.cancelled, report.timed_out) == (6, 0, False)
            with pytest.raises(PoolClosedError):
                await pool.submit(99)
            assert not pool.submit_or_drop(99)
        assert sorted(done) == list(range(6))

    run(main())


def test_drain_cancels_the_rest_at_the_deadline_and_wakes_blocked_producers() -> None:
    async def main() -> None:
        started: list[int] = []
        finished: list[int] = []

        async def handler(job: int) -> None:
            started.append(job)
            await asyncio.sleep(0.05 if job == 0 else 10)
            finished.append(job)

        async with WorkerPool("slow", workers=2, queue_size=3, handler=handler) as pool:
            for i in range(5):  # 2 in flight + 3 queued
                await pool.submit(i)
            await settle()
            blocked = asyncio.create_task(pool.submit(5))
            await settle()
            report = await pool.drain(0.3)
            with pytest.raises(PoolClosedError):
                await blocked
        # job 0 finished; job 2 was then taken and cancelled mid-flight with job 1; 3 and 4 never ran
        assert finished == [0]
        assert started == [0, 1, 2]
        assert report.timed_out
        assert report.completed == 1
        assert report.cancelled == 4
        assert pool.stats().cancelled == 4
        assert report.elapsed_s < 1.0

    run(main())


def test_worker_checks_cancellation_before_taking_a_job() -> None:
    async def main() -> None:
        taken: list[int] = []

        async def handler(job: int) -> None:
            taken.append(job)  # never suspends: Queue.get() would never see the cancel

        pool = WorkerPool("c", workers=1, queue_size=100, handler=handler)
        async with pool:
            for i in range(50):
                pool.submit_or_drop(i)
            pool._tasks[0].cancel()  # the worker is cancelled while jobs are queued
            await settle(3)
            report = await pool.drain(0.2)  # no worker left: the deadline cancels the queue
        assert len(taken) < 50
        assert report.cancelled == 50 - len(taken)

    run(main())


def test_two_pools_with_one_name_share_a_metric_family() -> None:
    reg = CollectorRegistry()

    async def main() -> None:
        async def handler(_: int) -> None:
            return None

        async with (
            WorkerPool("same", 1, 1, handler, registry=reg) as a,
            WorkerPool("same", 1, 1, handler, registry=reg) as b,
        ):
            await a.submit(1)
            await b.submit(2)

    run(main())
    assert sample(reg, "jobs_submitted_total", "same") == 2
    assert pool_metric_families(reg) is pool_metric_families(reg)


def test_pool_exit_with_error_cancels_workers() -> None:
    async def main() -> WorkerPool[int]:
        async def handler(_: int) -> None:
            await asyncio.sleep(10)

        pool = WorkerPool("e", workers=1, queue_size=5, handler=handler)
        with pytest.raises(RuntimeError, match="boom"):
            async with pool:
                for i in range(3):
                    await pool.submit(i)
                await settle()
                raise RuntimeError("boom")
        return pool

    pool = run(main())
    assert pool.stats().cancelled == 3


# -- ErrGroup -----------------------------------------------------------------------------------


def test_errgroup_first_error_cancels_siblings_and_raises_exception_group() -> None:
    cancelled: list[int] = []

    async def sibling(i: int) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    async def boom() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("first")

    async def main() -> None:
        async with ErrGroup() as g:
            for i in range(3):
                await g.go(sibling, i)
            await g.go(boom)

    with pytest.raises(ExceptionGroup) as info:
        run(main())
    assert info.group_contains(ValueError, match="first")
    assert len(info.value.exceptions) == 1
    assert sorted(cancelled) == [0, 1, 2]


def test_errgroup_limit_blocks_the_producer_before_create_task() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        results: list[int] = []

        async def work(i: int) -> None:
            await gate.wait()
            results.append(i)

        async with ErrGroup(limit=3) as g:
            for i in range(3):
                await g.go(work, i)
            producer = asyncio.create_task(g.go(work, 3))
            await settle()
            assert not producer.done()  # no 4th task exists yet
            assert g.running == 3
            gate.set()
            await producer
            for i in range(4, 20):
                await g.go(work, i)
        assert sorted(results) == list(range(20))
        assert g.max_running == 3

    run(main())


def test_errgroup_producer_blocked_on_limit_is_released_by_failure() -> None:
    async def main() -> None:
        async def fail() -> None:
            await asyncio.sleep(0.01)
            raise KeyError("x")

        async def forever() -> None:
            await asyncio.sleep(10)

        async with ErrGroup(limit=2) as g:
            await g.go(fail)
            await g.go(forever)
            await g.go(forever)  # blocks on the limit until the failure cancels us

    with pytest.raises(ExceptionGroup) as info:
        run(main())
    assert info.group_contains(KeyError)


# -- ConcurrencyLimiter -------------------------------------------------------------------------


def test_limiter_weights_and_fifo() -> None:
    async def main() -> None:
        lim = ConcurrencyLimiter(6)
        await lim.acquire(5)  # heavy
        assert (lim.borrowed, lim.available) == (5, 1)
        order: list[str] = []

        async def take(tag: str, w: int) -> None:
            await lim.acquire(w)
            order.append(tag)

        heavy = asyncio.create_task(take("heavy", 5))
        await settle()
        light = asyncio.create_task(take("light", 1))  # 1 token is free, but heavy is queued ahead
        await settle()
        assert order == [] and lim.waiting == 2
        assert not lim.try_acquire(1)
        lim.release(5)
        await asyncio.gather(heavy, light)
        assert order == ["heavy", "light"]
        assert lim.borrowed == 6

    run(main())


def test_limiter_cancelled_waiter_takes_nothing_and_unblocks_others() -> None:
    async def main() -> None:
        lim = ConcurrencyLimiter(4)
        await lim.acquire(3)
        big = asyncio.create_task(lim.acquire(4))
        await settle()
        small = asyncio.create_task(lim.acquire(1))
        await settle()
        assert not small.done()  # FIFO: behind big
        big.cancel()
        await settle()
        assert small.done() and big.cancelled()
        assert lim.borrowed == 4

    run(main())


def test_limiter_capacity_change_and_wait_all() -> None:
    async def main() -> None:
        lim = ConcurrencyLimiter(2)
        await lim.acquire(2)
        waiter = asyncio.create_task(lim.acquire(2))
        await settle()
        assert not waiter.done()
        lim.capacity = 4  # growing admits the waiter at once
        await settle()
        assert waiter.done() and lim.borrowed == 4
        lim.capacity = 1  # shrinking lets holders finish
        assert lim.available == 0
        all_done = asyncio.create_task(lim.wait_all())
        await settle()
        assert not all_done.done()
        lim.release(2)
        lim.release(2)
        await all_done
        assert lim.borrowed == 0
        with pytest.raises(ValueError):
            await lim.acquire(2)

    run(main())


def test_limiter_run_is_shielded_once_admitted() -> None:
    async def main() -> None:
        lim = ConcurrencyLimiter(5)
        finished: list[str] = []

        async def job() -> str:
            await asyncio.sleep(0.02)
            finished.append("heavy")
            return "ok"

        caller = asyncio.create_task(lim.run(job, weight=5))
        await settle()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert lim.borrowed == 5  # still running
        await lim.wait_all()
        assert finished == ["heavy"] and lim.borrowed == 0

    run(main())


def test_limiter_wait_queue_is_bounded() -> None:
    async def main() -> None:
        lim = ConcurrencyLimiter(1, max_waiters=2)
        await lim.acquire()
        waiters = [asyncio.create_task(lim.acquire()) for _ in range(2)]
        await settle()
        with pytest.raises(TooManyWaitersError):
            await lim.acquire()
        for w in waiters:
            w.cancel()

    run(main())


# -- RateLimiter --------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def test_rate_limiter_token_bucket_with_fake_clock() -> None:
    clock = FakeClock()
    rl = RateLimiter(10.0, burst=3, clock=clock, sleep=clock.sleep)
    assert [rl.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.1
    assert rl.try_acquire() and not rl.try_acquire()
    clock.now += 10.0
    assert rl.tokens == 3.0  # capped at burst
    with pytest.raises(ValueError):
        rl.try_acquire(4)

    async def main() -> list[float]:
        waited = [await rl.acquire() for _ in range(5)]  # 3 banked, then one per 0.1 s
        return waited

    waited = run(main())
    assert waited[:3] == [0.0, 0.0, 0.0]
    assert waited[3] == pytest.approx(0.1) and waited[4] == pytest.approx(0.1)
    assert sum(clock.sleeps) == pytest.approx(0.2)


def test_rate_limiter_is_shared_across_concurrent_callers() -> None:
    clock = FakeClock()
    rl = RateLimiter(100.0, burst=1, clock=clock, sleep=clock.sleep)

    async def main() -> None:
        start = clock.now
        await asyncio.gather(*(rl.acquire() for _ in range(11)))
        assert clock.now - start == pytest.approx(0.1)  # 1 banked + 10 at 100/s

    run(main())


# -- GracefulShutdown ---------------------------------------------------------------------------


def test_graceful_shutdown_sequence() -> None:
    events: list[str] = []

    async def main() -> None:
        async def fake_sleep(s: float) -> None:
            events.append(f"sleep {s}")

        async def handler(job: int) -> None:
            await asyncio.sleep(0.01)
            events.append(f"job {job}")

        sd = GracefulShutdown(pre_stop_delay_s=15, drain_deadline_s=2, sleep=fake_sleep)

        async def stop_server() -> None:
            events.append(f"stop accepting ready={sd.ready}")

        async def commit() -> None:
            events.append("commit")

        sd.on_stop_accepting(stop_server)
        sd.on_drained(commit)
        async with WorkerPool("s", workers=1, queue_size=5, handler=handler) as pool:
            sd.register(pool)
            await pool.submit(1)
            await pool.submit(2)
            assert sd.ready
            report = await sd.shutdown()
            assert await sd.shutdown() is report  # idempotent
        assert not sd.ready and sd.done.is_set()
        assert report.drains["s"].completed == 2

    run(main())
    assert events[:2] == ["sleep 15", "stop accepting ready=False"]
    assert events[-1] == "commit"
    assert sorted(events[2:4]) == ["job 1", "job 2"]
