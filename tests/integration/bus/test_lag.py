"""Consumer lag on every adapter (``bus.lag``) and its Prometheus gauge (``LagMonitor``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from tests.integration.bus.conftest import FAST_RETRY, new_topic, open_bus, wait_until

from hexcity.infra.bus import Delivery, read_lag
from hexcity.infra.bus.lag import LagMonitor
from hexcity.kernel.events import Event

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

N = 7


async def lag_of(bus: Any, topic: str, group: str) -> int:
    return await read_lag(bus, topic, group)


async def eventually(read: Callable[[], Awaitable[int]], want: int, timeout_s: float = 20.0) -> None:
    """Poll ``read`` until it returns ``want``; fail with the last value after ``timeout_s``."""
    last = None
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        last = await read()
        if last == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"lag stayed {last}, want {want}")


def gauge(registry: CollectorRegistry, topic: str, group: str) -> float | None:
    return registry.get_sample_value("bus_consumer_lag", {"topic": topic, "group": group})


def test_lag_counts_unacked_events_until_the_group_acks_them(kind: str) -> None:
    topic = new_topic()

    async def scenario() -> None:
        async with open_bus(kind, [topic]) as bus:
            assert await lag_of(bus, topic, "g") == 0  # nothing published yet
            for i in range(N):
                await bus.publish(Event(topic=topic, key=f"k{i}", payload={"i": i}))
            assert await lag_of(bus, topic, "g") == N  # no consumer yet: the group starts at the oldest
            assert await lag_of(bus, new_topic(), "g") == 0

            registry = CollectorRegistry()
            async with LagMonitor(bus, [(topic, "g")], registry, interval_s=0.05, timeout_s=5.0):
                assert gauge(registry, topic, "g") == float(N)  # refreshed on start
                release = asyncio.Event()
                started: list[str] = []
                done: list[str] = []

                async def handler(d: Delivery) -> None:
                    started.append(d.event.event_id)
                    await release.wait()
                    done.append(d.event.event_id)

                await bus.subscribe(topic, "g", handler, policy=FAST_RETRY)
                await wait_until(lambda: len(started) >= 1)
                assert await lag_of(bus, topic, "g") == N  # delivered but unacked still counts
                await asyncio.sleep(0.2)
                assert gauge(registry, topic, "g") == float(N)

                release.set()
                await wait_until(lambda: len(set(done)) == N)
                await eventually(lambda: lag_of(bus, topic, "g"), 0)

                async def from_gauge() -> int:
                    value = gauge(registry, topic, "g")
                    return -1 if value is None else int(value)

                await eventually(from_gauge, 0, timeout_s=5.0)
                assert gauge(registry, topic, "g") == 0.0
                errors = registry.get_sample_value("bus_lag_errors_total", {"topic": topic, "group": "g"})
                assert errors == 0.0

    asyncio.run(scenario())


class FlakyBus:
    """A lag source that fails, hangs or answers, and records overlapping calls."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.active = 0
        self.max_active = 0

    async def lag(self, topic: str, group: str) -> int:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(0.02)
            if self.mode == "fail":
                raise ConnectionError("broker down")
            if self.mode == "hang":
                await asyncio.sleep(3600)
            return 3
        finally:
            self.active -= 1


def test_monitor_counts_failures_and_never_overlaps_refreshes() -> None:
    async def scenario() -> None:
        bus, registry = FlakyBus(), CollectorRegistry()
        monitor = LagMonitor(bus, [("t", "g")], registry, interval_s=0.01, timeout_s=0.1)
        async with monitor:
            assert gauge(registry, "t", "g") == 3.0
            await asyncio.gather(monitor.refresh(), monitor.refresh(), monitor.refresh())
            assert bus.max_active == 1
            bus.mode = "fail"
            await monitor.refresh()
            bus.mode = "hang"
            await monitor.refresh()  # bounded by timeout_s, not raised
            errors = registry.get_sample_value("bus_lag_errors_total", {"topic": "t", "group": "g"})
            assert errors is not None and errors >= 2
            assert gauge(registry, "t", "g") == 3.0  # last good value kept
        assert monitor._task is None
        # a second monitor on the same registry shares the families (no duplicate registration)
        LagMonitor(bus, [("t2", "g")], registry)

    asyncio.run(asyncio.wait_for(scenario(), 30))
