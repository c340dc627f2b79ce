"""InProcessBus and the port helpers: fast, no services."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from hexcity.infra.bus import BusClosedError, BusFullError, Delivery, InProcessBus, RetryPolicy
from hexcity.infra.bus.port import dead_letter, decode_event, encode_event, partition_of
from hexcity.kernel.events import Event

pytestmark = pytest.mark.timeout(30)


async def _until(pred: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async def loop() -> None:
        while not pred():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(loop(), timeout_s)


def test_retry_policy_full_jitter_is_bounded() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay_s=0.1, max_delay_s=0.3)
    rng = random.Random(1)
    for attempt, cap in [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.3), (10, 0.3)]:
        delays = [policy.delay_s(attempt, rng) for _ in range(200)]
        assert min(delays) >= 0.0 and max(delays) <= cap


def test_envelope_round_trip_dead_letter_and_partitions() -> None:
    e = Event(topic="a.b", key="k", payload={"x": [1, "ü"]}, headers={"h": "v"})
    assert decode_event(encode_event(e)) == e
    d = dead_letter(e, ValueError("bad"), 3)
    assert (d.topic, d.event_id, d.payload) == ("a.b.dlq", e.event_id, e.payload)
    assert d.headers["x-dlq-attempts"] == "3" and d.headers["h"] == "v"
    assert d.headers["x-dlq-error"] == "ValueError: bad"
    assert partition_of("driver-7", 8) == partition_of("driver-7", 8)
    assert {partition_of(f"k{i}", 8) for i in range(100)} == set(range(8))


def test_backoff_uses_injected_rng_and_sleep() -> None:
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    async def scenario() -> None:
        bus = InProcessBus(rng=random.Random(42), sleep=fake_sleep)
        tries: list[int] = []

        async def handler(d: Delivery) -> None:
            tries.append(d.attempt)
            raise RuntimeError("always")

        policy = RetryPolicy(max_attempts=4, base_delay_s=1.0, max_delay_s=8.0)
        await bus.subscribe("t", "g", handler, policy=policy)
        await bus.publish(Event(topic="t", key="k", payload={}))
        await _until(lambda: len(bus.retained("t.dlq")) == 1)
        assert tries == [1, 2, 3, 4]
        expected_rng = random.Random(42)
        assert slept == [policy.delay_s(a, expected_rng) for a in (1, 2, 3)]
        assert bus.retained("t.dlq")[0].headers["x-dlq-attempts"] == "4"
        await bus.close()

    asyncio.run(scenario())


def test_full_topic_blocks_then_raises_bus_full() -> None:
    async def scenario() -> None:
        bus = InProcessBus(max_events_per_topic=3, publish_timeout_s=0.05)
        for i in range(3):
            await bus.publish(Event(topic="t", key="k", payload={"i": i}))
        with pytest.raises(BusFullError, match="unconsumed"):
            await bus.publish(Event(topic="t", key="k", payload={}))

    asyncio.run(scenario())


def test_full_topic_publish_resumes_when_consumers_catch_up() -> None:
    async def scenario() -> None:
        bus = InProcessBus(max_events_per_topic=2, publish_timeout_s=2.0)
        gate = asyncio.Event()
        seen: list[int] = []

        async def handler(d: Delivery) -> None:
            await gate.wait()
            seen.append(int(d.event.payload["i"]))

        await bus.subscribe("t", "g", handler)
        await bus.publish(Event(topic="t", key="k", payload={"i": 0}))
        await bus.publish(Event(topic="t", key="k", payload={"i": 1}))
        blocked = asyncio.create_task(bus.publish(Event(topic="t", key="k", payload={"i": 2})))
        await asyncio.sleep(0.02)
        assert not blocked.done()  # backpressure: the producer waits
        gate.set()
        await asyncio.wait_for(blocked, 2)
        await _until(lambda: seen == [0, 1, 2])
        assert bus.lag("t", "g") == 0
        await bus.close()

    asyncio.run(scenario())


def test_stop_lets_in_flight_handler_finish_and_ack() -> None:
    async def scenario() -> None:
        bus = InProcessBus()
        started, release = asyncio.Event(), asyncio.Event()
        done: list[int] = []

        async def handler(d: Delivery) -> None:
            started.set()
            await release.wait()
            done.append(d.attempt)

        sub = await bus.subscribe("t", "g", handler)
        await bus.publish(Event(topic="t", key="k", payload={}))
        await asyncio.wait_for(started.wait(), 2)
        stopping = asyncio.create_task(sub.stop())
        await asyncio.sleep(0.01)
        assert not stopping.done()
        release.set()
        await asyncio.wait_for(stopping, 2)
        assert done == [1] and bus.lag("t", "g") == 0

    asyncio.run(scenario())


def test_aborted_member_does_not_ack_and_event_is_redelivered() -> None:
    async def scenario() -> None:
        bus = InProcessBus()
        started = asyncio.Event()
        got: list[tuple[str, int]] = []

        async def stuck(d: Delivery) -> None:
            started.set()
            await asyncio.Event().wait()

        async def ok(d: Delivery) -> None:
            got.append((d.event.key, d.attempt))

        victim = await bus.subscribe("t", "g", stuck)
        await bus.publish(Event(topic="t", key="a", payload={}))
        await asyncio.wait_for(started.wait(), 2)
        await bus.publish(Event(topic="t", key="a", payload={}))
        await victim.abort()
        assert bus.lag("t", "g") == 2
        await bus.subscribe("t", "g", ok)
        await _until(lambda: len(got) == 2)
        assert got == [("a", 2), ("a", 1)]  # the unacked one first, order of key "a" kept

    asyncio.run(scenario())


def test_late_group_starts_at_oldest_retained_and_log_is_trimmed() -> None:
    async def scenario() -> None:
        bus = InProcessBus()
        a: list[int] = []
        b: list[int] = []

        async def into(target: list[int], d: Delivery) -> None:
            target.append(int(d.event.payload["i"]))

        await bus.subscribe("t", "a", lambda d: into(a, d))
        for i in range(5):
            await bus.publish(Event(topic="t", key=str(i), payload={"i": i}))
        await _until(lambda: len(a) == 5)
        assert bus.retained("t") == []  # every group finished: trimmed
        await bus.publish(Event(topic="t", key="x", payload={"i": 5}))
        await bus.subscribe("t", "b", lambda d: into(b, d))
        await _until(lambda: len(a) == 6 and b == [5])
        await bus.close()
        with pytest.raises(BusClosedError):
            await bus.publish(Event(topic="t", key="x", payload={}))

    asyncio.run(scenario())


def test_many_keys_two_members_keep_per_key_order() -> None:
    async def scenario() -> None:
        bus = InProcessBus(max_events_per_topic=50)
        rng = random.Random(3)
        order: dict[str, list[int]] = {}
        busy: set[str] = set()
        overlap: list[str] = []

        async def handler(d: Delivery) -> None:
            key = d.event.key
            if key in busy:
                overlap.append(key)
            busy.add(key)
            await asyncio.sleep(rng.uniform(0, 0.001))
            order.setdefault(key, []).append(int(d.event.payload["seq"]))
            busy.discard(key)

        for _ in range(3):
            await bus.subscribe("t", "g", handler)
        for seq in range(30):
            for k in range(10):
                await bus.publish(Event(topic="t", key=f"k{k}", payload={"seq": seq}))
        await _until(lambda: sum(map(len, order.values())) == 300)
        assert not overlap
        assert all(v == list(range(30)) for v in order.values())
        await bus.close()

    asyncio.run(scenario())
