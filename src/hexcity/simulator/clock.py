"""The simulator's two clocks: wall time sped up (the live demo) and virtual time (headless runs).

Every actor of the simulator (a driver, a rider, a shop customer, a buyer in the crowd) waits
only through its clock: ``sleep``, ``sleep_until``, ``wait`` (an event), ``join`` (a task), and
starts helpers with ``spawn``. That is what lets one code base run two ways:

* :class:`SimClock` — simulated seconds are ``speed ×`` wall seconds; actors run concurrently
  and the platform runs on its own wall clock (``hexcity demo``).
* :class:`VirtualClock` — discrete-event time in lockstep with a platform on a **manual clock**
  (``HEXCITY_CLOCK=manual``; ``POST /admin/v1/clock/advance``). Exactly one actor runs at a
  time, in a deterministic order (due time, then the order in which actors went to sleep), and
  every one of its requests completes before the next actor runs; between two ticks the
  platform's clock is advanced and the platform runs its periodic jobs and drains its queues.
  The same seed therefore gives the same requests in the same order — and the same KPIs
  (``hexcity simulate``).

Rules for actors (both clocks): no ``asyncio.sleep``/``wait_for`` on wall time, no
``asyncio.create_task`` (use ``spawn``), no waiting on an ``asyncio.Event`` or a task except
through ``wait``/``join``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

__all__ = ["Clock", "SimClock", "VirtualClock", "VirtualClockError"]

T = TypeVar("T")


class Clock(Protocol):
    """What actors may use to wait; see the module docstring."""

    speed: float
    virtual: bool

    def now(self) -> float: ...

    async def sleep(self, sim_s: float) -> None: ...

    async def sleep_until(self, at_s: float, stop: asyncio.Event) -> bool: ...

    async def wait(self, event: asyncio.Event) -> None: ...

    async def join(self, task: asyncio.Task[Any]) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]: ...

    def platform_time(self, sim_at_s: float) -> float: ...

    def platform_duration(self, sim_s: float) -> float: ...


class SimClock:
    """Simulated seconds: ``start_s + speed × wall seconds elapsed``."""

    virtual = False

    def __init__(self, speed: float = 1.0, start_s: float | None = None) -> None:
        if not 0 < speed <= 1000:
            raise ValueError("speed must be in (0, 1000]")
        self.speed = speed
        self._wall0 = time.monotonic()
        self._sim0 = time.time() if start_s is None else start_s

    def now(self) -> float:
        return self._sim0 + (time.monotonic() - self._wall0) * self.speed

    async def sleep(self, sim_s: float) -> None:
        await asyncio.sleep(max(0.0, sim_s / self.speed))

    async def sleep_until(self, at_s: float, stop: asyncio.Event) -> bool:
        """Sleep until simulated ``at_s``; False if ``stop`` was set first."""
        delay_s = (at_s - self.now()) / self.speed
        if delay_s > 0 and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay_s)
        return not stop.is_set()

    async def wait(self, event: asyncio.Event) -> None:
        await event.wait()

    async def join(self, task: asyncio.Task[Any]) -> None:
        await asyncio.wait([task])

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        return asyncio.create_task(coro, name=name)

    def platform_time(self, sim_at_s: float) -> float:
        """The platform's (wall) epoch seconds at which simulated ``sim_at_s`` happens."""
        return time.time() + (sim_at_s - self.now()) / self.speed

    def platform_duration(self, sim_s: float) -> float:
        return sim_s / self.speed


class VirtualClockError(RuntimeError):
    """An actor broke the lockstep (waited on something other than its clock) or time ran out."""


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    fut: asyncio.Future[None] = field(compare=False)
    task: asyncio.Task[Any] | None = field(compare=False)


Advance = Callable[[float], Awaitable[object]]


class VirtualClock:
    """Discrete-event time in ticks of ``tick_s``, advanced by :meth:`run` (see the module doc).

    ``now()`` is the platform's epoch seconds (``start_s``: read from ``GET /admin/v1/clock``).
    A sleeper due at ``t`` wakes at the first tick boundary at or after ``t``.
    """

    virtual = True
    speed = 1.0

    def __init__(self, start_s: float, *, tick_s: float = 1.0, stall_timeout_s: float = 120.0) -> None:
        if not 0 < tick_s <= 60:
            raise ValueError("tick_s must be in (0, 60]")
        self._now = start_s
        self.tick_s = tick_s
        self.stall_timeout_s = stall_timeout_s
        self.ticks = 0
        self.wakeups = 0
        self.wakeups_by_kind: dict[str, int] = {}  # by actor kind: the task name before its first "-"
        self.advance_wall_s = 0.0  # wall seconds spent in advance() (the platform's share)
        self.actors_wall_s = 0.0  # wall seconds spent running actors (the simulator's requests)
        self._heap: list[_Timer] = []
        self._seq = itertools.count()
        self._pending: list[tuple[str, _Timer]] = []  # spawned before run(): ordered by name then
        self._running = False
        self._active: asyncio.Task[Any] | None = None
        self._yielded: asyncio.Future[None] | None = None

    def now(self) -> float:
        return self._now

    # ---- what actors call ------------------------------------------------------------------
    async def sleep(self, sim_s: float) -> None:
        await self._park(self._now + max(0.0, sim_s))

    async def sleep_until(self, at_s: float, stop: asyncio.Event) -> bool:
        if not stop.is_set():
            await self._park(max(self._now, at_s))
        return not stop.is_set()

    async def wait(self, event: asyncio.Event) -> None:
        while not event.is_set():
            await self._park(self._now + self.tick_s)

    async def join(self, task: asyncio.Task[Any]) -> None:
        while not task.done():
            await self._park(self._now + self.tick_s)

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        async def start() -> T:
            try:
                await fut
            except asyncio.CancelledError:
                coro.close()  # never started
                raise
            return await coro

        task = loop.create_task(start(), name=name)
        timer = _Timer(self._now, 0, fut, task)
        if self._running:
            timer.seq = next(self._seq)
            heapq.heappush(self._heap, timer)
        else:
            self._pending.append((name, timer))
        task.add_done_callback(self._task_done)
        return task

    def platform_time(self, sim_at_s: float) -> float:
        return sim_at_s

    def platform_duration(self, sim_s: float) -> float:
        return sim_s

    # ---- the scheduler -----------------------------------------------------------------------
    async def _park(self, due: float) -> None:
        task = asyncio.current_task()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, _Timer(due, next(self._seq), fut, task))
        if task is self._active and self._yielded is not None and not self._yielded.done():
            self._yielded.set_result(None)
        await fut

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task is self._active and self._yielded is not None and not self._yielded.done():
            self._yielded.set_result(None)

    async def run(
        self,
        until_s: float,
        advance: Advance,
        *,
        on_tick: Callable[[float], None] | None = None,
    ) -> None:
        """Play every actor up to ``until_s`` (epoch seconds): per tick, wake the sleepers that
        are due, one at a time, each until it sleeps again or ends; then ``advance(tick_s)``
        (the platform's clock) and move on. Returns with the sleepers still parked."""
        self._running = True
        for _name, timer in sorted(self._pending, key=lambda p: p[0]):
            timer.seq = next(self._seq)
            heapq.heappush(self._heap, timer)
        self._pending.clear()
        loop = asyncio.get_running_loop()
        while self._now < until_s:
            t_actors = time.perf_counter()
            while self._heap and self._heap[0].due <= self._now + 1e-9:
                timer = heapq.heappop(self._heap)
                if timer.fut.done():  # cancelled while parked
                    continue
                self._active = timer.task
                self._yielded = loop.create_future()
                timer.fut.set_result(None)
                self.wakeups += 1
                kind = timer.task.get_name().split("-", 1)[0] if timer.task else "?"
                self.wakeups_by_kind[kind] = self.wakeups_by_kind.get(kind, 0) + 1
                try:
                    await asyncio.wait_for(asyncio.shield(self._yielded), self.stall_timeout_s)
                except TimeoutError:
                    name = timer.task.get_name() if timer.task else "?"
                    raise VirtualClockError(
                        f"actor {name} did not yield within {self.stall_timeout_s:g} s: it waits on "
                        "something other than its clock"
                    ) from None
                finally:
                    self._active = None
            t_advance = time.perf_counter()
            self.actors_wall_s += t_advance - t_actors
            await advance(self.tick_s)
            self.advance_wall_s += time.perf_counter() - t_advance
            self._now += self.tick_s
            self.ticks += 1
            if on_tick is not None:
                on_tick(self._now)
        self._running = False

    async def shutdown(self, *, rounds: int = 100) -> int:
        """End the run: cancel every parked sleeper — again if one parks once more while it
        cleans up — until nobody is parked. Returns how many waits were cancelled."""
        self._running = False
        cancelled = 0
        for _ in range(rounds):
            timers = [*self._heap, *(t for _, t in self._pending)]
            self._heap.clear()
            self._pending.clear()
            if not timers:
                break
            for timer in timers:
                if not timer.fut.done():
                    timer.fut.cancel()
                    cancelled += 1
            for _ in range(3):
                await asyncio.sleep(0)
        return cancelled
