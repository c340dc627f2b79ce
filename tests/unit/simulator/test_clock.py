"""The virtual clock: lockstep order, ticks, spawn/join/wait, stalls and shutdown."""

from __future__ import annotations

import asyncio

import pytest

from hexcity.simulator import SimClock, VirtualClock, VirtualClockError

T0 = 1_000.0


async def _play(clock: VirtualClock, seconds: float) -> list[float]:
    advanced: list[float] = []

    async def advance(s: float) -> None:
        advanced.append(s)

    await clock.run(T0 + seconds, advance)
    return advanced


def test_actors_run_one_at_a_time_in_due_then_sleep_order() -> None:
    log: list[tuple[float, str, str]] = []

    async def actor(clock: VirtualClock, name: str, naps: list[float]) -> None:
        for nap in naps:
            log.append((clock.now(), name, "in"))
            await asyncio.sleep(0.001)  # a "request": nobody else may run meanwhile
            log.append((clock.now(), name, "out"))
            await clock.sleep(nap)

    async def main() -> list[float]:
        clock = VirtualClock(T0, tick_s=1.0)
        clock.spawn(actor(clock, "b", [2.0, 0.5, 1.0]), name="b")
        clock.spawn(actor(clock, "a", [1.0, 1.0, 1.0]), name="a")
        advanced = await _play(clock, 5.0)
        await clock.shutdown()
        return advanced

    advanced = asyncio.run(main())
    assert advanced == [1.0] * 5
    # never interleaved: every "in" is followed by the same actor's "out"
    for i in range(0, len(log), 2):
        assert log[i][1] == log[i + 1][1] and log[i][2] == "in" and log[i + 1][2] == "out"
    # spawned before the run: ordered by name; then by due time, then by who went to sleep
    # first (at t=2 b, asleep since t=0, before a, asleep since t=1); b's 0.5 s nap from t=2
    # is due at 2.5 and wakes at the tick of t=3
    order = [(t - T0, n) for t, n, io in log if io == "in"]
    assert order == [(0.0, "a"), (0.0, "b"), (1.0, "a"), (2.0, "b"), (2.0, "a"), (3.0, "b")]


def test_spawn_join_and_wait_are_clock_waits() -> None:
    events: list[tuple[float, str]] = []

    async def main() -> None:
        clock = VirtualClock(T0)
        done = asyncio.Event()

        async def child() -> None:
            await clock.sleep(3)
            events.append((clock.now() - T0, "child done"))

        async def parent() -> None:
            task = clock.spawn(child(), name="child")
            await clock.join(task)
            events.append((clock.now() - T0, "joined"))
            done.set()

        async def waiter() -> None:
            await clock.wait(done)
            events.append((clock.now() - T0, "saw done"))

        clock.spawn(parent(), name="p")
        clock.spawn(waiter(), name="w")
        await _play(clock, 10)
        await clock.shutdown()

    asyncio.run(main())
    # at t=3 the child (asleep since t=0) runs first, then the parent's join poll, then the
    # waiter's poll (both asleep since t=2, the parent first): all within the same tick
    assert events == [(3.0, "child done"), (3.0, "joined"), (3.0, "saw done")]


def test_an_actor_waiting_outside_its_clock_is_reported() -> None:
    async def main() -> None:
        clock = VirtualClock(T0, stall_timeout_s=0.2)
        never = asyncio.Event()

        async def bad() -> None:
            await never.wait()

        clock.spawn(bad(), name="bad-actor")
        await _play(clock, 2)

    with pytest.raises(VirtualClockError, match="bad-actor"):
        asyncio.run(main())


def test_shutdown_cancels_sleepers_even_if_they_park_again_while_cleaning_up() -> None:
    cleaned: list[str] = []

    async def main() -> int:
        clock = VirtualClock(T0)

        async def stubborn() -> None:
            try:
                await clock.sleep(100)
            finally:
                await clock.sleep(1)  # parks again in its finally
                cleaned.append("never")

        tasks = [clock.spawn(stubborn(), name=f"s{i}") for i in range(3)]
        never_started = clock.spawn(stubborn(), name="late")
        await _play(clock, 2)
        # a task spawned during the run that is due later than the end never starts
        cancelled = await clock.shutdown()
        assert all(t.done() for t in [*tasks, never_started])
        return cancelled

    assert asyncio.run(main()) == 8  # 4 first sleeps, then 4 sleeps in finally blocks
    assert cleaned == []


def test_the_same_program_gives_the_same_trace() -> None:
    import random

    def program() -> list[tuple[float, str]]:
        trace: list[tuple[float, str]] = []

        async def main() -> None:
            clock = VirtualClock(T0, tick_s=0.5)
            rng = random.Random(7)

            async def actor(name: str) -> None:
                for _ in range(20):
                    trace.append((clock.now(), name))
                    await asyncio.sleep(rng.random() / 1000)  # wall jitter must not matter
                    await clock.sleep(rng.uniform(0, 3))

            for i in range(5):
                clock.spawn(actor(f"actor-{i}"), name=f"actor-{i}")
            await _play(clock, 30)
            await clock.shutdown()

        asyncio.run(main())
        return trace

    assert program() == program()


def test_sim_clock_maps_platform_time() -> None:
    clock = SimClock(10.0, start_s=0.0)
    assert clock.platform_duration(60.0) == pytest.approx(6.0)
    assert VirtualClock(T0).platform_time(T0 + 5) == T0 + 5
    with pytest.raises(ValueError, match="tick_s"):
        VirtualClock(T0, tick_s=0)
