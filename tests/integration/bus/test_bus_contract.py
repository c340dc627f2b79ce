"""The EventBus contract, one suite run against every adapter (in-process, NATS, Redis)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict

import pytest
from tests.integration.bus.conftest import FAST_RETRY, new_topic, open_bus, wait_until

from hexcity.infra.bus import Delivery
from hexcity.kernel.events import Event

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_publish_then_consume(kind: str) -> None:
    topic = new_topic()

    async def scenario() -> None:
        async with open_bus(kind, [topic]) as bus:
            seen: dict[str, Delivery] = {}

            async def handler(d: Delivery) -> None:
                seen[d.event.event_id] = d

            await bus.subscribe(topic, "g", handler, policy=FAST_RETRY)
            events = [
                Event(topic=topic, key=f"k{i % 3}", payload={"i": i, "s": "ü"}, headers={"h": "1"})
                for i in range(20)
            ]
            for e in events:
                await bus.publish(e)
            await wait_until(lambda: len(seen) == len(events))
            for e in events:
                got = seen[e.event_id]
                assert got.attempt == 1
                assert (got.event.key, got.event.payload, got.event.headers) == (e.key, e.payload, e.headers)
                assert got.event.occurred_at_s == pytest.approx(e.occurred_at_s)

    asyncio.run(scenario())


def test_two_groups_each_get_every_event(kind: str) -> None:
    topic = new_topic()

    async def scenario() -> None:
        async with open_bus(kind, [topic]) as bus:
            got: dict[str, Counter[str]] = {"a": Counter(), "b": Counter()}

            def handler_for(group: str):  # type: ignore[no-untyped-def]
                async def handler(d: Delivery) -> None:
                    got[group][d.event.event_id] += 1

                return handler

            for group in got:
                await bus.subscribe(topic, group, handler_for(group), policy=FAST_RETRY)
            ids = set()
            for i in range(30):
                e = Event(topic=topic, key=f"k{i % 7}", payload={"i": i})
                ids.add(e.event_id)
                await bus.publish(e)
            await wait_until(lambda: all(set(c) == ids for c in got.values()))
            await asyncio.sleep(0.2)
            for c in got.values():
                assert set(c) == ids and max(c.values()) == 1

    asyncio.run(scenario())


def test_one_group_splits_work_between_members(kind: str) -> None:
    topic = new_topic()

    async def scenario() -> None:
        async with open_bus(kind, [topic]) as bus:
            by_member: dict[str, Counter[str]] = {"m1": Counter(), "m2": Counter()}

            def handler_for(member: str):  # type: ignore[no-untyped-def]
                async def handler(d: Delivery) -> None:
                    await asyncio.sleep(0.005)
                    by_member[member][d.event.event_id] += 1

                return handler

            for member in by_member:
                await bus.subscribe(topic, "workers", handler_for(member), policy=FAST_RETRY)
            ids = set()
            for i in range(60):
                e = Event(topic=topic, key=f"key-{i % 16}", payload={"i": i})
                ids.add(e.event_id)
                await bus.publish(e)
            total = lambda: by_member["m1"] + by_member["m2"]  # noqa: E731
            await wait_until(lambda: set(total()) == ids)
            await asyncio.sleep(0.2)
            assert max(total().values()) == 1, "an event went to two members of one group"
            assert by_member["m1"] and by_member["m2"], "work was not split"

    asyncio.run(scenario())


def test_per_key_ordering_under_interleaved_keys(kind: str) -> None:
    topic = new_topic()
    keys = [f"driver-{i}" for i in range(5)]
    per_key = 40

    async def scenario() -> None:
        async with open_bus(kind, [topic]) as bus:
            order: dict[str, list[int]] = defaultdict(list)
            in_flight: Counter[str] = Counter()
            overlaps: list[str] = []
            rng = random.Random(7)

            async def handler(d: Delivery) -> None:
                key = d.event.key
                in_flight[key] += 1
                if in_flight[key] > 1:
                    overlaps.append(key)
                await asyncio.sleep(rng.uniform(0, 0.003))
                order[key].append(int(d.event.payload["seq"]))
                in_flight[key] -= 1

            await bus.subscribe(topic, "g", handler, policy=FAST_RETRY)
            await bus.subscribe(topic, "g", handler, policy=FAST_RETRY)
            for seq in range(per_key):
                for key in keys:
                    await bus.publish(Event(topic=topic, key=key, payload={"seq": seq}))
            await wait_until(lambda: sum(len(v) for v in order.values()) >= len(keys) * per_key, 60)
            assert not overlaps, f"same key handled concurrently: {overlaps[:5]}"
            for key in keys:
                assert order[key] == list(range(per_key)), key

    asyncio.run(scenario())


def test_failure_is_redelivered_then_succeeds(kind: str) -> None:
    topic = new_topic()

    async def scenario() -> None:
        async with open_bus(kind, [topic]) as bus:
            attempts: list[int] = []
            done: list[str] = []

            async def handler(d: Delivery) -> None:
                attempts.append(d.attempt)
                if d.attempt < 3:
                    raise RuntimeError("transient")
                done.append(d.event.event_id)

            await bus.subscribe(topic, "g", handler, policy=FAST_RETRY)
            e = Event(topic=topic, key="k", payload={})
            await bus.publish(e)
            await wait_until(lambda: done == [e.event_id])
            await asyncio.sleep(0.3)
            assert attempts == [1, 2, 3]
            assert done == [e.event_id]

    asyncio.run(scenario())


def test_poison_goes_to_dlq_after_max_attempts_and_nothing_is_lost(kind: str) -> None:
    topic = new_topic()

    async def scenario() -> None:
        async with open_bus(kind, [topic]) as bus:
            tries: Counter[str] = Counter()
            handled: list[str] = []
            dlq: list[Event] = []

            async def handler(d: Delivery) -> None:
                tries[d.event.event_id] += 1
                if d.event.payload.get("poison"):
                    raise ValueError("cannot parse")
                handled.append(d.event.event_id)

            async def dlq_handler(d: Delivery) -> None:
                dlq.append(d.event)

            await bus.subscribe(topic, "g", handler, policy=FAST_RETRY)
            await bus.subscribe(topic + ".dlq", "ops", dlq_handler, policy=FAST_RETRY)
            before = [Event(topic=topic, key="k", payload={"i": i}) for i in range(3)]
            poison = Event(topic=topic, key="k", payload={"poison": True})
            after = [Event(topic=topic, key="k", payload={"i": i}) for i in range(3, 6)]
            others = [Event(topic=topic, key=f"o{i}", payload={"i": i}) for i in range(10)]
            for e in [*before, poison, *after, *others]:
                await bus.publish(e)
            good = [e.event_id for e in [*before, *after, *others]]
            await wait_until(lambda: len(dlq) == 1 and set(handled) == set(good))
            await asyncio.sleep(0.3)
            assert tries[poison.event_id] == FAST_RETRY.max_attempts
            dead = dlq[0]
            assert dead.event_id == poison.event_id and dead.payload == poison.payload
            assert dead.headers["x-dlq-attempts"] == str(FAST_RETRY.max_attempts)
            assert "cannot parse" in dead.headers["x-dlq-error"]
            assert dead.headers["x-dlq-original-topic"] == topic
            assert sorted(handled) == sorted(good), "lost or duplicated events"
            same_key = [i for i in handled if i in {e.event_id for e in [*before, *after]}]
            assert same_key == [e.event_id for e in [*before, *after]], "order around the poison"

    asyncio.run(scenario())
